"""The engine's CLI commands (manifest, run --dry-run, report, submit --dry-run) and, slow, the quickstart."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from guide_ray.config.manifest import read_manifest
from guide_ray.errors import ConfigError
from guide_ray.store.results import commit_row
from guide_ray.store.schema import ResultRow, utc_now

ROOT = Path(__file__).resolve().parents[2]


def _cli(argv: list[str]) -> int:
    """Parse with just the engine's commands (the full CLI also loads the lead's modules)."""
    parser = argparse.ArgumentParser(prog="guide-ray")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("manifest", "run", "report", "submit"):
        importlib.import_module(f"guide_ray.commands.{name}").add_parser(sub, name, name)
    args = parser.parse_args(argv)
    return args.handler(args)


def test_manifest_random(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.parquet"
    assert _cli(["manifest", "random", "--n", "3", "--seed", "5", "-o", str(out)]) == 0
    read = read_manifest(out)
    assert [r.identity_id for _, r in read.rows] == ["random-0000", "random-0001", "random-0002"]
    assert "wrote 3 identities" in capsys.readouterr().out


def test_manifest_folder_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "people" / "ann").mkdir(parents=True)
    (tmp_path / "people" / "ann" / "a.png").write_bytes(b"x")
    out = tmp_path / "m.parquet"
    assert _cli(["manifest", "folder", str(tmp_path / "people"), "--scenario", "ffhq", "-o", str(out)]) == 0
    [(_, row)] = read_manifest(out).rows
    assert (row.identity_id, row.scenario, row.source) == ("ann", "ffhq", "people/ann/a.png")
    (tmp_path / "people" / "ben").mkdir()
    with pytest.raises(ConfigError, match="ben: no images"):
        _cli(["manifest", "folder", str(tmp_path / "people"), "-o", str(out)])


def test_run_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(["run", str(ROOT / "jobs" / "quickstart.yaml"), "--dry-run", "--output-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0
    assert "to run: 3, already done: 0, stale: 0, invalid rows: 0" in out
    assert out.count("run_key=") == 3 and "weights: world:embedded" in out
    assert not (tmp_path / "r" / "results").exists()  # nothing ran


def test_dry_run_lists_rejected_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"identity_id": ["ok-1", "x\ny", "ok-2"], "scenario": ["random", "random", "random"],
                             "seed": [1, 2, 3], "guide.iterations": [None, None, 0]}), manifest)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({"name": "d", "manifest": str(manifest), "model": {"backend": "tiny"},
                                   "output_dir": str(tmp_path / "r")}))
    assert _cli(["run", str(job), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run: 1, already done: 0, stale: 0, invalid rows: 2" in out
    assert "rejected manifest rows:\n  row 1 (x\\ny): " in out  # escaped: no forged line
    assert "  row 2 (ok-2): " in out and "iterations" in out.split("row 2 (ok-2): ")[1]


def test_run_rejects_a_bad_limit() -> None:
    with pytest.raises(ConfigError, match="--limit"):
        _cli(["run", str(ROOT / "jobs" / "quickstart.yaml"), "--limit", "0"])


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        _cli(["report", str(tmp_path)])
    commit_row(tmp_path, ResultRow(identity_id="a", scenario="random", backend="tiny", variant="guide", seed=1, source="",
                                   status="ok", ID=0.1, seconds=60.0, worker="w", node="n", device="cpu",
                                   run_key="k", job_key="j", code_version="0", finished_at=utc_now()))
    assert _cli(["report", str(tmp_path)]) == 0
    assert "| random | guide | 0.1000 |" in capsys.readouterr().out
    assert (tmp_path / "report.html").is_file()


def test_submit_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["submit", str(ROOT / "jobs" / "ffhq-guide-cluster.yaml"), "--address", "http://h:8265", "--dry-run"]) == 0
    request = json.loads(capsys.readouterr().out)
    assert request["entrypoint"].startswith("python -m guide_ray.cli run jobs/ffhq-guide-cluster.yaml")
    assert request["runtime_env"]["working_dir"] == str(ROOT)


@pytest.mark.slow
@pytest.mark.ray
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    """`guide-ray run jobs/quickstart.yaml` on CPU with the shipped world: every identity ok, table printed
    without a † (the world's networks are trained, not stand-ins)."""
    run = subprocess.run([sys.executable, "-m", "guide_ray.cli", "run", str(ROOT / "jobs" / "quickstart.yaml"),
                          "--output-dir", str(tmp_path / "run"), "--no-progress"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| random | guide |" in run.stdout and "†" not in run.stdout and "3 ok, 0 failed" in run.stdout
    assert len(list((tmp_path / "run" / "results").glob("*.parquet"))) == 3
