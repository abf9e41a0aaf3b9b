"""`guide-ray unlearn` runs one WorkItem through the batch pipeline: same files, same metrics.json format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RECORD_KEYS = {"identity_id", "scenario", "variant", "seed", "metrics", "id_views_unaligned", "losses", "iterations",
               "seconds", "device", "backend", "guide", "fid", "lpips_drift", "seeds", "networks", "stand_in", "artifacts",
               "version", "micro_batch", "autocast", "stage_seconds"}


def _unlearn(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guide_ray.cli", "unlearn", "--out", str(out), "--iterations", "1",
                           "--device", "cpu", "--seed", "4", *extra], capture_output=True, text=True, timeout=600)


def test_unlearn_writes_what_a_batch_worker_writes(tmp_path: Path) -> None:
    run = _unlearn(tmp_path / "out", "--backend", "tiny")
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "out" / "artifacts" / "random-seed4"
    assert {p.name for p in folder.iterdir()} == {"metrics.json", "unlearned_synthesis.pt", "grid.png",
                                                  "losses.csv", "loss_curve.png"}
    record = json.loads((folder / "metrics.json").read_text())
    assert record["identity_id"] == "random-seed4" and record["seed"] == 4 and record["iterations"] == 1
    assert set(record["metrics"]) == {"ID", "ID_others", "FID_pre", "delta_FID_real", "LPIPS_drift"}
    assert record["metrics"]["ID"] is not None and record["metrics"]["FID_pre"] is None
    assert record["id_views_unaligned"] is None and record["stand_in"] is True       # tiny: no MTCNN alignment
    assert set(record) == RECORD_KEYS                                                  # Pipeline.run's format
    assert "ID: " in run.stdout and "STAND-IN" in run.stdout
    again = _unlearn(tmp_path / "out", "--backend", "tiny")
    assert again.returncode == 2 and "already holds a finished run" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--metrics", "FID"), "metrics"),
    (("--variant", "gide"), "did you mean 'guide'"),
])
def test_unlearn_rejects_bad_options_before_any_work(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    run = _unlearn(tmp_path / "out", *args)
    assert run.returncode == 2 and message in run.stderr
    assert not (tmp_path / "out").exists()
