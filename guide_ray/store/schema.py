"""The result row: one identity's outcome, the only record the reducer and resume logic trust.

`ResultRow` (pydantic) and `RESULT_SCHEMA` (pyarrow) describe the same columns in the same order;
tests/store/test_result_schema.py keeps them equal and pins the column list, so a change here is a
deliberate schema change (bump `SCHEMA_VERSION` and update docs/engine.md). The metric columns come
from the metric registry (guide_ray.config.metrics), one nullable float each. No torch, no ray.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
from pydantic import Field, create_model

from guide_ray.config.base import StrictModel
from guide_ray.config.metrics import LPIPS_DRIFT, METRICS

SCHEMA_VERSION = "4"   # 2: id_views_unaligned; 3: backend; 4: LPIPS_drift
METRIC_COLUMNS = tuple(m.column for m in METRICS)


class _RowHead(StrictModel):
    """The columns before the metric columns: which identity, how it ended."""

    identity_id: str = Field(description="unique id from the manifest; also the result file name")
    scenario: str = Field(description="random | ffhq | celebahq | world_in_domain | world_ood | custom")
    backend: str = Field(description="generator backend (guide_ray.config.backends), e.g. eg3d-ffhq512-128, "
                         "stylegan2-ffhq1024")
    variant: str = Field(description="GUIDE variant name (guide_ray.config.variants)")
    seed: int = Field(description="the item's seed: random latent and unlearning RNG")
    source: str = Field(description="source image path/URI as resolved by the manifest reader; '' for random")
    status: Literal["ok", "failed"] = Field(description="'ok', or 'failed' after max_attempts attempts")
    error: str | None = Field(None, description="'ExceptionType: message' when failed")


_RowMetrics = create_model(   # the registry's metric columns, in registry order, after the head
    "_RowMetrics", __base__=_RowHead,
    **{m.column: (float | None, Field(None, description=m.description)) for m in METRICS},
)


class ResultRow(_RowMetrics):
    """One identity, one run_key: the commit record written by the driver (see store.results)."""

    id_views_unaligned: int | None = Field(
        None, description="ID / ID_others renders in which MTCNN found no face (they fell back to the ID-loss "
        "crop); null when no aligned ID metric ran")
    loss_first: float | None = Field(None, description="total unlearning loss at the first step")
    loss_last: float | None = Field(None, description="total unlearning loss at the last step")
    loss_min: float | None = Field(None, description="lowest total unlearning loss over all steps")
    iterations: int | None = Field(None, description="unlearning steps actually run")
    seconds: float = Field(description="wall time of the final attempt, measured in the worker (or driver on death)")
    attempts: int = Field(1, ge=1, description="attempts used, including the one recorded here")
    worker: str = Field(description="actor name, e.g. 'quickstart-3f2a1c-w0'")
    node: str = Field(description="Ray node id ('unknown' if the actor died before reporting it)")
    device: str = Field(description="torch device, plus Ray's GPU ids: 'cuda:0 (GPU 3)', 'cpu'")
    stand_in: bool = Field(False, description="True when any stand-in network or generator was used")
    run_key: str = Field(description="per-item fingerprint of every result-affecting setting (store.runkey)")
    job_key: str = Field(description="per-job part of run_key: backend, weights, metrics, code version")
    code_version: str = Field(description="guide_ray.__version__ that produced the row")
    artifact_weights: str | None = Field(None, description="unlearned synthesis weights, relative to the run dir")
    artifact_grid: str | None = Field(None, description="before/after image grid, relative to the run dir")
    finished_at: datetime = Field(description="UTC time the row was built (informational, not a key)")


RESULT_SCHEMA = pa.schema(
    [
        pa.field("identity_id", pa.string(), nullable=False),
        pa.field("scenario", pa.string(), nullable=False),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        *(pa.field(m.column, pa.float64()) for m in METRICS),
        pa.field("id_views_unaligned", pa.int64()),
        pa.field("loss_first", pa.float64()),
        pa.field("loss_last", pa.float64()),
        pa.field("loss_min", pa.float64()),
        pa.field("iterations", pa.int64()),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("attempts", pa.int64(), nullable=False),
        pa.field("worker", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("device", pa.string(), nullable=False),
        pa.field("stand_in", pa.bool_(), nullable=False),
        pa.field("run_key", pa.string(), nullable=False),
        pa.field("job_key", pa.string(), nullable=False),
        pa.field("code_version", pa.string(), nullable=False),
        pa.field("artifact_weights", pa.string()),
        pa.field("artifact_grid", pa.string()),
        pa.field("finished_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ],
    metadata={"guide_ray.schema_version": SCHEMA_VERSION},
)


def utc_now() -> datetime:
    """The `finished_at` stamp: timezone-aware UTC (Parquet stores it as microseconds)."""
    return datetime.now(UTC)


def rows_to_table(rows: list[ResultRow]) -> pa.Table:
    """Rows → a table with exactly RESULT_SCHEMA (column order, types, metadata)."""
    data = [row.model_dump() for row in rows]
    return pa.Table.from_pylist(data, schema=RESULT_SCHEMA)


def _backend_before_v3(table: pa.Table) -> pa.Array:
    """Rows written before v3 all came from an EG3D backend, and `tiny` rows were exactly the ones
    marked stand_in (every network of eg3d-ffhq512-128 was real then)."""
    stand_in = table.column("stand_in").to_pylist()
    return pa.array(["tiny" if s else "eg3d-ffhq512-128" for s in stand_in], type=pa.string())


# Columns added after schema v1: version that added them, and how an older row's value is derived.
# A row file written before a column existed is upgraded in memory, so hours of finished GPU work
# are never quarantined or recomputed because the schema grew.
ADDED_COLUMNS: dict[str, tuple[str, Callable[[pa.Table], pa.Array]]] = {
    "id_views_unaligned": ("2", lambda t: pa.nulls(t.num_rows, type=pa.int64())),   # not measured then
    "backend": ("3", _backend_before_v3),
    LPIPS_DRIFT.column: ("4", lambda t: pa.nulls(t.num_rows, type=pa.float64())),   # no such metric then
}


def table_to_rows(table: pa.Table) -> list[ResultRow]:
    """A table read back from disk → validated rows, upgraded from an older schema version if it
    lacks only columns of ADDED_COLUMNS. Raises ValueError on a foreign schema."""
    got = table.schema.remove_metadata()
    missing = [name for name in RESULT_SCHEMA.names if name not in got.names]
    if missing and set(missing) <= set(ADDED_COLUMNS):   # an older version of ours (else refused below)
        for name in missing:
            table = table.append_column(RESULT_SCHEMA.field(name), ADDED_COLUMNS[name][1](table))
        table = table.select(RESULT_SCHEMA.names)
        got = table.schema.remove_metadata()
    if not got.equals(RESULT_SCHEMA.remove_metadata()):
        raise ValueError(f"not a guide_ray result table (schema v{SCHEMA_VERSION}): got columns {got.names}")
    return [ResultRow.model_validate(record) for record in table.to_pylist()]
