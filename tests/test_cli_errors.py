"""Hostile inputs to the CLI, run as real `python -m guide_ray.cli` processes: a one-line error and
the documented exit status instead of a traceback or a hang (issue 7)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 25  # far above the few seconds these take, far below Ray's own 30-40 s connect retries


def _cli(*argv: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    return subprocess.run([sys.executable, "-m", "guide_ray.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)


def _error_line(proc: subprocess.CompletedProcess[str], command: str) -> str:
    """The single `guide-ray CMD: error: ...` line; fails on a traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"guide-ray {command}: error: ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


@pytest.mark.parametrize("form", ["http://127.0.0.1:{port}", "https://127.0.0.1:{port}", "127.0.0.1:{port}",
                                  "ray://127.0.0.1:{port}", "auto", "localhost", "http://"])
def test_submit_to_an_address_where_nothing_listens(tmp_path: Path, form: str) -> None:
    address = form.format(port=_closed_port())
    proc = _cli("submit", "jobs/quickstart.yaml", "--output-dir", str(tmp_path / "out"), "--address", address,
                timeout=DEADLINE_S)
    assert proc.returncode == 2  # could not start
    line = _error_line(proc, "submit")
    assert "http://HEAD:8265, https://HEAD:PORT or HEAD:PORT" in line  # says which forms are accepted
    if form.startswith(("http", "127")) and form != "http://":
        assert f"nothing listens at {address if '://' in address else 'http://' + address}" in line
        assert "Connection refused" in line
    else:
        assert f"--address {address!r} is not a job server address" in line


def test_unlearn_out_is_checked_before_any_computing(tmp_path: Path) -> None:
    a_file = tmp_path / "taken.txt"
    a_file.write_text("keep me")
    proc = _cli("unlearn", "--out", str(a_file), "--iterations", "1")
    assert proc.returncode == 2
    assert "--out " + str(a_file) + " is an existing file" in _error_line(proc, "unlearn")
    assert a_file.read_text() == "keep me"
    proc = _cli("unlearn", "--out", str(a_file / "sub"), "--iterations", "1")
    assert proc.returncode == 2 and "is not a writable folder" in _error_line(proc, "unlearn")
    proc = _cli("unlearn", "--out", "/proc/guide-ray-out", "--iterations", "1")
    assert proc.returncode == 2 and "is not a writable folder" in _error_line(proc, "unlearn")
    assert "unlearning" not in proc.stderr  # refused before the first step


def test_unlearn_iterations_must_be_at_least_one(tmp_path: Path) -> None:
    proc = _cli("unlearn", "--out", str(tmp_path / "o"), "--iterations", "0")
    assert proc.returncode == 2
    assert "iterations" in _error_line(proc, "unlearn") and "greater than or equal to 1" in proc.stderr


def test_unlearn_non_finite_loss_is_one_line(tmp_path: Path) -> None:
    proc = _cli("unlearn", "--out", str(tmp_path / "o"), "--iterations", "2", "--set", "lr=1e30", timeout=600)
    assert proc.returncode == 2
    line = _error_line(proc, "unlearn")
    assert "unlearning diverged: loss is nan at step 1; nothing was saved" in line
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_weights_exit_status_says_whether_the_backend_can_run(tmp_path: Path) -> None:
    empty = tmp_path / "w"
    empty.mkdir()
    proc = _cli("weights", str(empty))
    assert proc.returncode == 1
    assert "backend eg3d-ffhq512-128 cannot run: ffhqrebalanced512-128.pkl (missing)" in proc.stdout
    assert _cli("weights", str(empty), "--backend", "tiny").returncode == 0
    # a required file with the wrong content is not "can run" either
    (empty / "vgg16-397923af.pth").write_bytes(b"not the published file")
    proc = _cli("weights", str(empty), "--backend", "eg3d-ffhq512-128")
    assert proc.returncode == 1 and "vgg16-397923af.pth (wrong-hash)" in proc.stdout
    proc = _cli("weights", str(empty), "--backend", "eg3d")
    assert proc.returncode == 2 and "unknown backend 'eg3d'" in _error_line(proc, "weights")


def _planned_run(tmp_path: Path, backend: str = "tiny") -> Path:
    """A run folder as `guide-ray run` leaves it before any identity finished (no Ray needed)."""
    from guide_ray.config.job import JobSpec
    from guide_ray.engine.run import RunOptions, plan, write_run_records
    from guide_ray.store.ownership import adopt

    job = JobSpec.model_validate({"name": "t", "manifest": {"generate": "random", "n": 2},
                                  "output_dir": str(tmp_path / "run"), "model": {"backend": backend}})
    adopt(job.run_dir)
    write_run_records(job, plan(job, RunOptions()))
    return job.run_dir


def test_verify_refuses_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"x")
    proc = _cli("verify", str(tmp_path), "--no-progress", timeout=DEADLINE_S)
    assert proc.returncode == 2
    assert "is not a guide-ray run folder (no .guide-ray-run marker)" in _error_line(proc, "verify")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg"]   # nothing written there


def test_verify_names_an_unknown_identity(tmp_path: Path) -> None:
    run_dir = _planned_run(tmp_path)
    proc = _cli("verify", str(run_dir), "--identity", "random-0000", "--identity", "nobody", "--no-progress",
                timeout=DEADLINE_S)
    assert proc.returncode == 2
    line = _error_line(proc, "verify")
    assert "unknown identity 'nobody': not in the manifest of" in line and "random-0000" in line
    assert not (run_dir / "verify").exists()


def test_verify_refuses_a_bad_threshold(tmp_path: Path) -> None:
    proc = _cli("verify", str(_planned_run(tmp_path)), "--threshold", "1.5", "--no-progress", timeout=DEADLINE_S)
    assert proc.returncode == 2
    assert "verify settings: threshold" in _error_line(proc, "verify")
