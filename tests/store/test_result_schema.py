"""The result schema is stable: pydantic model and pyarrow schema agree, column list pinned and documented."""

from __future__ import annotations

import re
import typing
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from rowfactory import make_row

from guide_ray.store.schema import RESULT_SCHEMA, SCHEMA_VERSION, ResultRow, rows_to_table, table_to_rows

# Changing this list is a schema change: bump SCHEMA_VERSION and update docs/engine.md.
PINNED = [
    "identity_id", "scenario", "backend", "variant", "seed", "source", "status", "error", "ID", "ID_others", "FID_pre",
    "delta_FID_real", "LPIPS_drift", "id_views_unaligned", "loss_first", "loss_last", "loss_min", "iterations", "seconds", "attempts", "worker",
    "node", "device", "stand_in", "run_key", "job_key", "code_version", "artifact_weights", "artifact_grid",
    "finished_at",
]
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
          datetime: pa.timestamp("us", tz="UTC")}


def test_columns_are_pinned() -> None:
    assert list(ResultRow.model_fields) == PINNED
    assert RESULT_SCHEMA.names == PINNED
    assert SCHEMA_VERSION == "4"


@pytest.mark.parametrize("name", PINNED)
def test_pydantic_and_arrow_types_agree(name: str) -> None:
    annotation = ResultRow.model_fields[name].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    base = args[0] if args and typing.get_origin(annotation) is not typing.Literal else annotation
    if typing.get_origin(annotation) is typing.Literal:
        base = str
    field = RESULT_SCHEMA.field(name)
    assert field.type == _ARROW[base]
    assert field.nullable == optional


def test_round_trip_is_lossless() -> None:
    rows = [make_row("a"), make_row("b", status="failed", error="ValueError: x", ID=None, stand_in=True)]
    table = rows_to_table(rows)
    assert table.schema.metadata == {b"guide_ray.schema_version": b"4"}
    assert table_to_rows(table) == rows


def test_foreign_table_is_refused() -> None:
    with pytest.raises(ValueError, match="not a guide_ray result table"):
        table_to_rows(pa.table({"identity_id": ["a"]}))


@pytest.mark.parametrize("version, dropped", [("1", ["id_views_unaligned", "backend", "LPIPS_drift"]),
                                              ("2", ["backend", "LPIPS_drift"]), ("3", ["LPIPS_drift"])])
@pytest.mark.parametrize("stand_in, backend", [(True, "tiny"), (False, "eg3d-ffhq512-128")])
def test_rows_of_older_schema_versions_are_upgraded_not_refused(tmp_path: Path, version, dropped, stand_in,
                                                                 backend) -> None:
    """Files written before a column existed read back with its derived value and stay committed."""
    import pyarrow.parquet as pq

    from guide_ray.store.results import load_rows, result_path

    row = make_row("old", backend=backend, stand_in=stand_in, artifact_weights=None, artifact_grid=None)
    old = rows_to_table([row]).drop_columns(dropped).replace_schema_metadata({"guide_ray.schema_version": version})
    path = result_path(tmp_path, "old")
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)
    assert table_to_rows(pq.read_table(path)) == [row]          # id_views_unaligned of make_row is None
    loaded = load_rows(tmp_path)
    assert loaded.rows == [row] and not loaded.quarantined and path.is_file()


def test_docs_list_every_column() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    section = doc.split("\n## Result rows\n", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert [name for name, _ in documented] == PINNED
    for name, typ in documented:
        field = RESULT_SCHEMA.field(name)
        assert typ == f"{field.type}{'' if field.nullable else ', not null'}", name
