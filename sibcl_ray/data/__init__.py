"""Datasets on disk: Parquet shards with a checksum manifest, and their generation on Ray."""
