"""Verification rows: RUN/verify/<identity_id>.parquet, one `VerifyRow` each, committed atomically.

The same contract as result rows (store.results): written to a temp file and `os.replace`d, so a
crash leaves no row or a whole row; the driver is the only writer; a finished row (ok or failed)
is never recomputed or overwritten, and a file that cannot be trusted is moved to RUN/quarantine/
and its identity verified again. `verify_key` ties a row to the result row it attacked (its
run_key) and to the verification settings, so changed settings are detected, never mixed.
The attack images live in RUN/verify/artifacts/<identity_id>/, promoted from RUN/verify/staging/
like the run's artifacts (store.artifacts, with RUN/verify as the root). No torch, no ray.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationError

from guide_ray.config.base import StrictModel
from guide_ray.store.results import quarantine
from guide_ray.utils.files import TMP_SUFFIX, atomic_file

VERIFY = "verify"
VERIFY_SCHEMA_VERSION = "1"
Verdict = Literal["forgotten", "not forgotten"]


class VerifyRow(StrictModel):
    """One identity's verification (see docs/verify.md for how each figure is measured)."""

    identity_id: str = Field(description="the verified identity (its result row's id)")
    backend: str = Field(description="generator backend of the run")
    scenario: str = Field(description="random | ffhq | celebahq | custom")
    variant: str = Field(description="GUIDE variant the identity was unlearned with")
    seed: int = Field(description="the identity's seed (attack starts and re-learning derive from it)")
    status: Literal["ok", "failed"] = Field(description="'ok', or 'failed' after max_attempts attempts")
    error: str | None = Field(None, description="'ExceptionType: message' when failed")
    ID: float | None = Field(None, description="same-latent ID from the result row (GUIDE's metric)")
    ID_same: float | None = Field(None, description="same-latent score recomputed here on the scoring views")
    ID_worst: float | None = Field(None, description="highest score over every attack on the source (worst case)")
    attack_worst: str | None = Field(None, description="the attack that reached ID_worst")
    ID_others_worst: float | None = Field(None, description="highest score over the attacks on the other photos")
    attack_others_worst: str | None = Field(None, description="the attack (and photo) that reached it")
    attack_scores: str | None = Field(None, description="JSON: every attack's score on the source")
    attack_steps: int | None = Field(None, description="Adam steps per optimisation start (the fixed budget)")
    relearn_steps: int | None = Field(None, description="fine-tuning steps after which ID exceeded the threshold; "
                                      "null = not within relearn_budget")
    relearn_budget: int | None = Field(None, description="the re-learning attack's step budget")
    relearn_ID: float | None = Field(None, description="highest score seen while re-learning")
    verdict: Verdict | None = Field(None, description="'forgotten' when ID_worst <= threshold")
    threshold: float | None = Field(None, description="match threshold the verdict used")
    threshold_source: str | None = Field(None, description="'user' or 'far=<FAR> over <n> identities'")
    collateral_drift: float | None = Field(None, description="mean ID drift (1 - cos) of the probe identities")
    collateral_slope_emb: float | None = Field(None, description="slope of drift on embedding distance to the "
                                               "forgotten identity")
    collateral_slope_w: float | None = Field(None, description="slope of drift on W+ distance to w_u")
    diversity_ratio: float | None = Field(None, description="spread of G_u's probe renders over G_s's; < 1 = "
                                          "collapse onto a template")
    probes: int | None = Field(None, description="probe identities of the collateral map")
    verify_seed: int | None = Field(None, description="seed of the probes, calibration and random starts")
    artifact_attack: str | None = Field(None, description="source / G_s / G_u / best attack image, run-relative")
    artifact_collateral: str | None = Field(None, description="collateral plot, run-relative")
    seconds: float = Field(description="wall time of the final attempt")
    attempts: int = Field(1, ge=1, description="attempts used, including the one recorded here")
    worker: str = Field(description="actor name")
    node: str = Field(description="Ray node id")
    device: str = Field(description="torch device")
    stand_in: bool = Field(False, description="True when any stand-in network or generator was used")
    run_key: str = Field(description="run_key of the result row that was attacked")
    verify_key: str = Field(description="run_key + verification settings + code version")
    code_version: str = Field(description="guide_ray.__version__ that produced the row")
    finished_at: datetime = Field(description="UTC time the row was built")


_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_field(name: str) -> pa.Field:
    info = VerifyRow.model_fields[name]
    kinds = [a for a in getattr(info.annotation, "__args__", (info.annotation,)) if a is not type(None)]
    if name in ("status", "verdict"):
        kind = pa.string()
    elif kinds[0] is datetime:
        kind = pa.timestamp("us", tz="UTC")
    else:
        kind = _ARROW[kinds[0]]
    return pa.field(name, kind, nullable=not info.is_required() and info.default is None)


VERIFY_SCHEMA = pa.schema([_arrow_field(n) for n in VerifyRow.model_fields],
                          metadata={"guide_ray.verify_schema_version": VERIFY_SCHEMA_VERSION})


def verify_dir(run_dir: Path) -> Path:
    return run_dir / VERIFY


def row_path(run_dir: Path, identity_id: str) -> Path:
    return verify_dir(run_dir) / f"{identity_id}.parquet"


def commit_verify_row(run_dir: Path, row: VerifyRow) -> Path:
    """Write `row` atomically to RUN/verify/<identity_id>.parquet (the rename is the commit)."""
    final = row_path(run_dir, row.identity_id)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(final) as tmp:
        pq.write_table(pa.Table.from_pylist([row.model_dump()], schema=VERIFY_SCHEMA), tmp)
    return final


def read_verify_row(path: Path) -> VerifyRow:
    """The one row in `path`; ValueError for another schema or row count."""
    table = pq.read_table(path)
    if not table.schema.remove_metadata().equals(VERIFY_SCHEMA.remove_metadata()):
        raise ValueError(f"not a guide_ray verify table: columns {table.schema.names}")
    if table.num_rows != 1:
        raise ValueError(f"expected exactly one verify row, found {table.num_rows}")
    return VerifyRow.model_validate(table.to_pylist()[0])


def load_verify_rows(run_dir: Path) -> list[VerifyRow]:
    """Every trustworthy verify row, in identity order; damaged files go to RUN/quarantine/."""
    rows = []
    folder = verify_dir(run_dir)
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        try:
            row = read_verify_row(path)
            if path.name != f"{row.identity_id}.parquet":
                raise ValueError(f"holds the verify row of {row.identity_id!r}")
            missing = [p for p in (row.artifact_attack, row.artifact_collateral) if p and not (run_dir / p).is_file()]
            if missing:
                raise ValueError(f"ok row whose image {missing[0]} is missing")
        except (OSError, ValueError, ValidationError) as exc:
            quarantine(run_dir, path, f"verify row unreadable: {type(exc).__name__}: {exc}"[:500])
            continue
        rows.append(row)
    return rows


def sweep_verify_tmp(run_dir: Path) -> int:
    """Delete temp files of interrupted verify commits; returns how many."""
    folder = verify_dir(run_dir)
    stale = list(folder.glob(f".*{TMP_SUFFIX}")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)
