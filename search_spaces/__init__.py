"""Packaged search spaces; installed as ``sibcl_ray.search_spaces`` (see pyproject.toml)."""
