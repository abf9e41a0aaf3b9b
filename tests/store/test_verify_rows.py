"""Verify rows: pydantic and pyarrow agree, commits are atomic files, damaged files are quarantined."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guide_ray.store.verify import (
    VERIFY_SCHEMA,
    VerifyRow,
    commit_verify_row,
    load_verify_rows,
    read_verify_row,
    row_path,
)


def make_verify_row(identity_id: str = "id-0", **changes: object) -> VerifyRow:
    base: dict[str, object] = {
        "identity_id": identity_id, "backend": "tiny", "scenario": "random", "variant": "guide", "seed": 1,
        "status": "ok", "ID": 0.3, "ID_worst": 0.5, "attack_worst": "encoder", "verdict": "forgotten",
        "threshold": 0.6, "threshold_source": "user", "relearn_steps": None, "relearn_budget": 200,
        "seconds": 3.0, "worker": "w0", "node": "n0", "device": "cpu", "run_key": "k" * 16, "verify_key": "v" * 16,
        "code_version": "0.1.0", "finished_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return VerifyRow.model_validate({**base, **changes})


def test_schema_matches_the_model_and_pins_the_issue_columns() -> None:
    assert VERIFY_SCHEMA.names == list(VerifyRow.model_fields)
    for column in ("identity_id", "ID", "ID_worst", "attack_worst", "relearn_steps", "verdict", "threshold",
                   "collateral_drift", "collateral_slope_emb", "collateral_slope_w", "diversity_ratio"):
        assert column in VERIFY_SCHEMA.names
    assert not VERIFY_SCHEMA.field("identity_id").nullable and VERIFY_SCHEMA.field("relearn_steps").nullable


def test_commit_and_read_back(tmp_path: Path) -> None:
    row = make_verify_row("a", collateral_slope_emb=-0.25)
    path = commit_verify_row(tmp_path, row)
    assert path == tmp_path / "verify" / "a.parquet"
    assert read_verify_row(path) == row
    assert [p.name for p in path.parent.iterdir()] == ["a.parquet"]          # no temp file left behind


def test_damaged_and_misnamed_files_are_quarantined(tmp_path: Path) -> None:
    commit_verify_row(tmp_path, make_verify_row("good"))
    row_path(tmp_path, "torn").write_bytes(b"PAR1 not really")
    commit_verify_row(tmp_path, make_verify_row("x"))
    row_path(tmp_path, "x").rename(row_path(tmp_path, "y"))                  # holds x's row under y's name
    assert [r.identity_id for r in load_verify_rows(tmp_path)] == ["good"]
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "quarantine").glob("*.parquet.*")) == ["torn", "y"]


def test_verdict_is_a_closed_set() -> None:
    with pytest.raises(ValueError, match="verdict"):
        make_verify_row(verdict="probably")
