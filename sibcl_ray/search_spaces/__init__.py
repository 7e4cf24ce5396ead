"""Packaged search spaces (``search_spaces/`` at the repository top is a link to this folder)."""
