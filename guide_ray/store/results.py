"""Durable per-identity result rows: atomic commit, the done-set for resume, and reading them back.

Layout: RUN/results/<identity_id>.parquet holds exactly one `ResultRow`. A row is written to a
temp file in the same folder and `os.replace`d into place, so a crash (Ctrl-C, driver death,
node loss) leaves either no row or a whole row, never half of one. The driver is the only writer.

A file that still cannot be trusted (truncated or empty by a full disk or a hand edit, a foreign
schema, two rows, a row whose identity is not its file name, an `ok` row whose artifacts are
gone) is moved to RUN/quarantine/ with its reason appended to RUN/quarantine/quarantine.jsonl,
never deleted; its identity then counts as not done, so the next run computes it again.
No torch, no ray.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pyarrow.parquet as pq
from pydantic import ValidationError

from guide_ray.store.schema import ResultRow, rows_to_table, table_to_rows
from guide_ray.utils.files import TMP_SUFFIX, atomic_file

log = logging.getLogger(__name__)

RESULTS = "results"
SUPERSEDED = "superseded"
QUARANTINE = "quarantine"
QUARANTINE_LOG = "quarantine.jsonl"
MANIFEST_ERRORS = "manifest_errors.json"


def result_path(run_dir: Path, identity_id: str) -> Path:
    """Where the committed row of `identity_id` lives."""
    return run_dir / RESULTS / f"{identity_id}.parquet"


def commit_row(run_dir: Path, row: ResultRow) -> Path:
    """Write `row` atomically to RUN/results/<identity_id>.parquet, replacing any older row.

    Callers decide whether replacing is allowed (`engine.run` only replaces failed rows on
    `--retry-failed`); this function only guarantees all-or-nothing visibility.
    """
    final = result_path(run_dir, row.identity_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(final) as tmp:  # the rename is the commit point
        pq.write_table(rows_to_table([row]), tmp)
    return final


def read_row(path: Path) -> ResultRow:
    """The single row stored in `path`. Raises ValueError if the file is not a one-row result."""
    rows = table_to_rows(pq.read_table(path))
    if len(rows) != 1:
        raise ValueError(f"{path}: expected exactly one result row, found {len(rows)}")
    return rows[0]


@dataclass
class Loaded:
    """The trustworthy rows of a run, and the files this read moved to quarantine."""

    rows: list[ResultRow] = field(default_factory=list)
    quarantined: list[Path] = field(default_factory=list)


def load_rows(run_dir: Path) -> Loaded:
    """Every trustworthy committed row, in identity_id order; damaged files are quarantined.

    Temp files are never read. Each identity appears at most once (its file name is its id).
    """
    loaded = Loaded()
    folder = run_dir / RESULTS
    if not folder.is_dir():
        return loaded
    for path in sorted(folder.glob("*.parquet")):
        try:
            loaded.rows.append(_trusted_row(run_dir, path))
        except DamagedResult as exc:
            moved = quarantine(run_dir, path, str(exc))
            if moved is not None:
                loaded.quarantined.append(moved)
    return loaded


class DamagedResult(ValueError):
    """A result file that cannot be trusted; the message is the reason recorded in quarantine."""


def _trusted_row(run_dir: Path, path: Path) -> ResultRow:
    try:
        row = read_row(path)
    except (OSError, ValueError, ValidationError) as exc:  # ArrowInvalid is a ValueError
        raise DamagedResult(f"unreadable: {type(exc).__name__}: {exc}"[:500]) from exc
    if path.name != f"{row.identity_id}.parquet":
        raise DamagedResult(f"holds the row of identity {row.identity_id!r}, not of the identity its name says")
    if row.status == "ok":
        for rel in (row.artifact_weights, row.artifact_grid):
            if rel is not None and not (run_dir / rel).is_file():
                raise DamagedResult(f"ok row whose artifact {rel} is missing")
    return row


def quarantine(run_dir: Path, path: Path, reason: str) -> Path | None:
    """Move `path` to RUN/quarantine/<name>.<stamp> and log why; None if another process moved it first."""
    folder = run_dir / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = folder / f"{path.name}.{stamp}-{uuid4().hex[:6]}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    entry = {"file": str(path.relative_to(run_dir)), "moved_to": str(target.relative_to(run_dir)),
             "reason": reason, "at": stamp}
    with (folder / QUARANTINE_LOG).open("a") as fh:  # O_APPEND: one short line per file
        fh.write(json.dumps(entry) + "\n")
    log.warning("quarantined %s: %s (moved to %s; its identity will be computed again)",
                entry["file"], json.dumps(reason), entry["moved_to"])
    return target


def iter_rows(run_dir: Path) -> Iterator[ResultRow]:
    """Every trustworthy committed row of the run (see `load_rows`)."""
    yield from load_rows(run_dir).rows


def committed(run_dir: Path) -> dict[str, ResultRow]:
    """identity_id → committed row, whatever its run_key; the engine compares keys (resume)."""
    return {row.identity_id: row for row in iter_rows(run_dir)}


def sweep_tmp(run_dir: Path) -> int:
    """Delete temp files left by an interrupted commit; returns how many. Safe: never a committed row."""
    folder = run_dir / RESULTS
    stale = list(folder.glob(f"*{TMP_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d unfinished result file(s) from an interrupted commit", len(stale))
    return len(stale)


def supersede(run_dir: Path, row: ResultRow) -> Path:
    """Move a committed row aside to RUN/superseded/<identity_id>.<run_key>.parquet (never deleted).

    Used by `--replace-stale`, so a row computed under other settings stays inspectable after
    its identity is recomputed.
    """
    target = run_dir / SUPERSEDED / f"{row.identity_id}.{row.run_key}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(result_path(run_dir, row.identity_id), target)
    return target


def write_manifest_errors(run_dir: Path, errors: list[dict[str, object]]) -> Path:
    """RUN/manifest_errors.json: one {row, identity_id, reason} per rejected manifest row ([] if none).

    Rejected rows have no valid identity to key a result file by, so they live here, not in results/.
    """
    path = run_dir / MANIFEST_ERRORS
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(errors, indent=2) + "\n")
    return path


def read_manifest_errors(run_dir: Path) -> list[dict[str, object]]:
    """The rejected manifest rows of the last run ([] when the file is absent)."""
    path = run_dir / MANIFEST_ERRORS
    return json.loads(path.read_text()) if path.is_file() else []
