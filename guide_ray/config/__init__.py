"""The edge: pydantic models for everything a user writes (CLI flags, job YAML, manifest rows).

No torch here, so validation errors surface before any heavy import.
"""
