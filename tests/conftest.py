"""Shared test fixtures: where the read-only fixtures live, and cheap stand-in networks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared folder beside the checkout (fixtures, research notes)."""
    return Path(os.environ.get("GUIDE_RAY_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
