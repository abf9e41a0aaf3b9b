"""Shared test fixtures: where the read-only fixtures live, and cheap stand-in networks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared folder beside the checkout (official-format fixtures), or $GUIDE_RAY_SHARED.

    A checkout without it skips the fixture-based tests, with the path in the reason (never a pass).
    """
    path = Path(os.environ.get("GUIDE_RAY_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    if not (path / "fixtures").is_dir():
        pytest.skip(f"official-format fixtures not found at {path}/fixtures (set GUIDE_RAY_SHARED)")
    return path


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need CUDA; on machines without it (CI) they are reported as skipped, not passed."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
