"""Atomic commit, done-set, temp-file sweep, supersede, per-attempt staging and promotion."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rowfactory import make_row

from guide_ray.store import results
from guide_ray.store.schema import rows_to_table
from guide_ray.store.artifacts import artifact_dir, attempt_dir, move_aside, promote, relative_to_run, sweep_staging
from guide_ray.utils.files import atomic_file


def test_commit_then_read_back(tmp_path: Path) -> None:
    path = results.commit_row(tmp_path, make_row("a"))
    assert path == tmp_path / "results" / "a.parquet"
    assert results.read_row(path) == make_row("a")
    assert list((tmp_path / "results").iterdir()) == [path]  # no temp file left


def test_commit_replaces_atomically(tmp_path: Path) -> None:
    results.commit_row(tmp_path, make_row("a", status="failed", error="E: x", ID=None))
    results.commit_row(tmp_path, make_row("a"))
    assert results.committed(tmp_path)["a"].status == "ok"


def test_failed_write_leaves_no_row_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_write(table: object, where: Path) -> None:
        Path(where).write_bytes(b"half a parquet file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        results.commit_row(tmp_path, make_row("a"))
    assert list((tmp_path / "results").iterdir()) == []


def test_failed_replace_keeps_the_old_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results.commit_row(tmp_path, make_row("a", ID=0.5))
    monkeypatch.setattr(pq, "write_table", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        results.commit_row(tmp_path, make_row("a", ID=0.9))
    assert results.committed(tmp_path)["a"].ID == 0.5


def test_committed_ignores_and_sweep_removes_temp_files(tmp_path: Path) -> None:
    results.commit_row(tmp_path, make_row("a"))
    (tmp_path / "results" / "b.parquet.1234.tmp").write_bytes(b"partial")
    assert set(results.committed(tmp_path)) == {"a"}
    assert results.sweep_tmp(tmp_path) == 1
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["a.parquet"]


def test_committed_of_an_empty_run(tmp_path: Path) -> None:
    assert results.committed(tmp_path) == {}
    assert results.sweep_tmp(tmp_path) == 0


def test_supersede_moves_row_and_artifacts(tmp_path: Path) -> None:
    row = make_row("a", run_key="old0old0old0old0")
    results.commit_row(tmp_path, row)
    artifact_dir(tmp_path, "a").mkdir(parents=True)
    (artifact_dir(tmp_path, "a") / "grid.png").write_bytes(b"png")
    moved = results.supersede(tmp_path, row)
    assert moved == tmp_path / "superseded" / "a.old0old0old0old0.parquet"
    assert move_aside(tmp_path, "a", moved.with_suffix("")) == tmp_path / "superseded" / "a.old0old0old0old0"
    assert (tmp_path / "superseded" / "a.old0old0old0old0" / "grid.png").read_bytes() == b"png"
    assert results.committed(tmp_path) == {}


def test_manifest_errors_round_trip(tmp_path: Path) -> None:
    assert results.read_manifest_errors(tmp_path) == []
    errors = [{"row": 3, "identity_id": None, "reason": "identity_id is null"}]
    results.write_manifest_errors(tmp_path, errors)
    assert results.read_manifest_errors(tmp_path) == errors


def test_attempts_stage_apart_and_promotion_never_deletes(tmp_path: Path) -> None:
    first, second = attempt_dir(tmp_path, "a"), attempt_dir(tmp_path, "a")
    assert first != second and first.parent == second.parent == tmp_path / "staging"
    (first / "G_u.pt").write_bytes(b"one")
    (second / "G_u.pt").write_bytes(b"two")
    paths = promote(tmp_path, "a", {"artifact_weights": relative_to_run(tmp_path, first / "G_u.pt"),
                                    "artifact_grid": None})
    assert paths == {"artifact_weights": "artifacts/a/G_u.pt", "artifact_grid": None}
    assert (tmp_path / "artifacts" / "a" / "G_u.pt").read_bytes() == b"one"
    sums = (tmp_path / "artifacts" / "a" / "SHA256SUMS").read_text()
    assert sums == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed  G_u.pt\n"  # sha256(b"one")
    # a later promotion finds the folder in its way: it is kept under quarantine/, never deleted
    promote(tmp_path, "a", {"artifact_weights": relative_to_run(tmp_path, second / "G_u.pt")})
    assert (tmp_path / "artifacts" / "a" / "G_u.pt").read_bytes() == b"two"
    kept = list((tmp_path / "quarantine" / "artifacts").iterdir())
    assert len(kept) == 1 and (kept[0] / "G_u.pt").read_bytes() == b"one"
    with pytest.raises(ValueError, match="not in one staging/ folder"):
        promote(tmp_path, "a", {"artifact_weights": "artifacts/a/G_u.pt"})


def test_sweep_staging_removes_only_unfinished_attempts(tmp_path: Path) -> None:
    (attempt_dir(tmp_path, "a") / "half.pt").write_bytes(b"x")
    artifact_dir(tmp_path, "b").mkdir(parents=True)
    assert sweep_staging(tmp_path) == 1
    assert list((tmp_path / "staging").iterdir()) == [] and artifact_dir(tmp_path, "b").is_dir()


@pytest.mark.parametrize("damage", ["truncated", "empty", "wrong schema", "two rows", "other identity",
                                    "missing artifact"])
def test_damaged_result_files_are_quarantined_not_counted(tmp_path: Path, damage: str) -> None:
    results.commit_row(tmp_path, make_row("good"))
    bad = results.result_path(tmp_path, "bad")
    if damage == "truncated":
        results.commit_row(tmp_path, make_row("bad"))
        bad.write_bytes(bad.read_bytes()[:100])
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "wrong schema":
        pq.write_table(pa.table({"identity_id": ["bad"]}), bad)
    elif damage == "two rows":
        pq.write_table(rows_to_table([make_row("bad"), make_row("bad", ID=0.9)]), bad)
    elif damage == "other identity":  # would count "good" twice
        pq.write_table(rows_to_table([make_row("good")]), bad)
    else:
        results.commit_row(tmp_path, make_row("bad", artifact_weights="artifacts/bad/G_u.pt"))
    loaded = results.load_rows(tmp_path)
    assert [r.identity_id for r in loaded.rows] == ["good"]
    assert len(loaded.quarantined) == 1 and loaded.quarantined[0].parent == tmp_path / "quarantine"
    assert not bad.exists() and loaded.quarantined[0].name.startswith("bad.parquet.")
    entry = json.loads((tmp_path / "quarantine" / "quarantine.jsonl").read_text())
    assert entry["file"] == "results/bad.parquet" and entry["reason"]
    assert results.load_rows(tmp_path).quarantined == []  # moved once, then gone from results/


def test_atomic_file_publishes_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "w.pt"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while saving")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"


def test_relative_to_run(tmp_path: Path) -> None:
    assert relative_to_run(tmp_path, tmp_path / "artifacts" / "a" / "g.png") == "artifacts/a/g.png"
    assert relative_to_run(tmp_path, "artifacts/a/g.png") == "artifacts/a/g.png"
    with pytest.raises(ValueError):
        relative_to_run(tmp_path, "/etc/passwd")
