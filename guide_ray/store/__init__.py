"""Durable run state on disk: the result-row schema, run keys, atomic commits and artifact paths.

Files only (pyarrow); no torch, no ray. The engine writes through it, the reducer reads through it.
"""
