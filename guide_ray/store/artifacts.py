"""Per-identity artifact files (unlearned weights, before/after grid) under RUN/artifacts/<identity_id>/.

Artifacts are written by the pipeline inside a worker before the driver commits the row; the row
is the commit marker, so artifacts without a committed row are leftovers of an unfinished
attempt and are wiped when the identity is attempted again. Paths stored in rows are relative
to the run dir, so a run folder can be moved or copied as a whole. No torch, no ray.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ARTIFACTS = "artifacts"


def artifact_dir(run_dir: Path, identity_id: str) -> Path:
    """RUN/artifacts/<identity_id>/ (not created)."""
    return run_dir / ARTIFACTS / identity_id


def fresh_artifact_dir(run_dir: Path, identity_id: str) -> Path:
    """An empty artifact folder for a new attempt; files of an earlier, uncommitted attempt are removed."""
    folder = artifact_dir(run_dir, identity_id)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def relative_to_run(run_dir: Path, path: Path | str) -> str:
    """`path` as a POSIX path relative to `run_dir`. Raises ValueError if it lies outside the run."""
    p = Path(path)
    absolute = p if p.is_absolute() else run_dir / p
    return absolute.resolve().relative_to(run_dir.resolve()).as_posix()


def move_aside(run_dir: Path, identity_id: str, dest: Path) -> Path | None:
    """Move the identity's artifact folder to `dest` (used when its row is superseded); None if absent."""
    folder = artifact_dir(run_dir, identity_id)
    if not folder.exists():
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder, dest)
    return dest
