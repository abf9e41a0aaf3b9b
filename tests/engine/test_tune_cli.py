"""`guide-ray tune` as a real process on the tiny core: Ctrl-C exits 130, `--resume` finishes the search
without rerunning the finished trial, and the best job runs with `guide-ray run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return env


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "guide_ray.cli", *args], env=_env(), text=True,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, what: str, timeout: float = 300) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_tune_cli_interrupt_resume_and_best_job(tmp_path: Path) -> None:
    # two trials, one at a time: 2 steps, then 60 steps (long enough to be interrupted in)
    base = {"name": "b", "manifest": {"generate": "random", "n": 1}, "model": {"backend": "tiny"},
            "guide": {"iterations": 2, "lr": 1e-2}, "metrics": ["ID"], "lpips_drift": {"num_probes": 2},
            "output_dir": "base-run", "device": "cpu", "resources": {"gpus_per_actor": 0, "cpus_per_actor": 1}}
    spec = {"name": "t", "base_job": base, "validation": {"limit": 1},
            "space": {"iterations": {"type": "grid", "values": [2, 60]}},
            "objective": {"damage": "LPIPS_drift", "damage_bound": 1.0},
            "searcher": {"kind": "grid", "include_default": False}, "num_samples": 1, "max_concurrent_trials": 1,
            "resources": {"cpus": 1, "gpus": 0}, "output_dir": "out"}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    trials = tmp_path / "out" / "trials"

    def metrics_files() -> list[Path]:
        return sorted(trials.glob("*/artifacts/random-0000/metrics.json")) if trials.is_dir() else []

    proc = _cli("tune", str(path), "--num-cpus", "2")
    try:
        _wait_for(lambda: len(metrics_files()) == 1 and len(list(trials.iterdir())) == 2, "the second trial")
        first = metrics_files()[0]
        stamp = first.stat().st_mtime_ns
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "guide-ray tune --resume" in out

    again = _cli("tune", str(path), "--num-cpus", "2")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "already holds the search" in err          # nothing is overwritten

    resumed = _cli("tune", "--resume", str(path), "--num-cpus", "2")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    table = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert sorted(table["iterations"]) == [2, 60] and set(table["status"]) == {"complete"}
    assert set(table["damage_metric"]) == {"LPIPS_drift"} and set(table["damage_samples"]) == {2}
    assert first.stat().st_mtime_ns == stamp                                      # the finished trial was not rerun
    assert len(metrics_files()) == 2

    best = _cli("run", str(tmp_path / "out" / "best_job.yaml"), "--no-progress", "--num-cpus", "2")
    out, err = best.communicate(timeout=600)
    assert best.returncode == 0, err[-3000:]
    assert list((tmp_path / "out" / "best-run" / "results").glob("*.parquet"))
