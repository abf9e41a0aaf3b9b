"""Atomic commit, done-set, temp-file sweep, supersede."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rowfactory import make_row

from guide_ray.store import results
from guide_ray.store.artifacts import fresh_artifact_dir, move_aside, relative_to_run
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
    (fresh_artifact_dir(tmp_path, "a") / "grid.png").write_bytes(b"png")
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


def test_fresh_artifact_dir_wipes_an_unfinished_attempt(tmp_path: Path) -> None:
    (fresh_artifact_dir(tmp_path, "a") / "half.pt").write_bytes(b"x")
    assert list(fresh_artifact_dir(tmp_path, "a").iterdir()) == []


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
