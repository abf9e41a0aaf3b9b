"""Per-identity artifact files (unlearned weights, before/after grid) under RUN/artifacts/<identity_id>/.

No attempt ever writes or deletes there. A worker writes into its own fresh folder,
RUN/staging/<identity_id>.<token>/, and returns a row whose artifact paths point into it; the
driver (the single writer, holding the run lock) `promote`s that folder to artifacts/<identity_id>/
and only then commits the row. So committed artifacts cannot be wiped by a later or concurrent
attempt, and whatever is left in staging/ belongs to no committed row (`sweep_staging` clears it
at the start of a run). Paths stored in rows are relative to the run dir, so a run folder can be
moved or copied as a whole. No torch, no ray.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from uuid import uuid4

from guide_ray.utils.files import atomic_file
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)

ARTIFACTS = "artifacts"
STAGING = "staging"
CHECKSUMS = "SHA256SUMS"
REPLACED = "quarantine/artifacts"  # a folder found where a promotion goes; kept, never deleted


def artifact_dir(run_dir: Path, identity_id: str) -> Path:
    """RUN/artifacts/<identity_id>/ (not created)."""
    return run_dir / ARTIFACTS / identity_id


def attempt_dir(run_dir: Path, identity_id: str) -> Path:
    """A new, empty RUN/staging/<identity_id>.<token>/ for one attempt (never shared, never reused)."""
    folder = run_dir / STAGING / f"{identity_id}.{uuid4().hex[:12]}"
    folder.mkdir(parents=True)
    return folder


def promote(run_dir: Path, identity_id: str, paths: dict[str, str | None]) -> dict[str, str | None]:
    """Move the staged folder the run-relative `paths` point into to artifacts/<identity_id>/.

    Returns the same paths, rewritten to their committed place. Called by the driver just before
    the row is committed (a crash in between leaves a folder without a row, moved aside by the
    next promotion). Raises ValueError when the paths are not all inside one staging folder.
    """
    staged = {PurePosixPath(p).parts[:2] for p in paths.values() if p is not None}
    if not staged:
        return paths
    if len(staged) != 1 or next(iter(staged))[0] != STAGING:
        raise ValueError(f"artifacts of {identity_id} are not in one {STAGING}/ folder: {sorted(paths.values())}")
    source = run_dir.joinpath(*next(iter(staged)))
    write_checksums(source)
    final = artifact_dir(run_dir, identity_id)
    if final.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = run_dir / REPLACED / f"{identity_id}.{stamp}-{uuid4().hex[:6]}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(final, kept)
        log.warning("%s: an artifact folder without a committed row was in the way; kept it as %s",
                    escape(identity_id), kept)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, final)
    prefix = len(source.relative_to(run_dir).parts)
    return {name: None if p is None else (PurePosixPath(ARTIFACTS, identity_id)
                                          / PurePosixPath(*PurePosixPath(p).parts[prefix:])).as_posix()
            for name, p in paths.items()}


def write_checksums(folder: Path) -> Path:
    """FOLDER/SHA256SUMS (`sha256sum -c` format) over every file in it, so committed artifacts can be verified."""
    lines = [f"{_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != CHECKSUMS]
    with atomic_file(folder / CHECKSUMS) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))
    return folder / CHECKSUMS


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sweep_staging(run_dir: Path) -> int:
    """Delete staged attempts of earlier runs (no committed row refers to them); returns how many."""
    folder = run_dir / STAGING
    stale = list(folder.iterdir()) if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if stale:
        log.info("removed %d unfinished attempt folder(s) from %s/", len(stale), STAGING)
    return len(stale)


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

