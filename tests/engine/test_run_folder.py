"""The run folder under hostile use, with real processes (issue 7): two runs on one folder at once, a
killed driver's leftover Ray processes, a folder that is not a run, and the exit-code contract of
`guide-ray run` (0 all ok, 1 some failed or rejected, 2 could not start, 130 interrupted).

Each driver here is its own process and starts its own local Ray cluster (no in-process cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import engine_fakes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from guide_ray.config.job import JobSpec
from guide_ray.store import ownership, results

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import logging, sys
sys.path.insert(0, {fakes_dir!r})
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
import engine_fakes
from ray import cloudpickle
from guide_ray.config.job import JobSpec
from guide_ray.engine.run import RunOptions, run_job
cloudpickle.register_pickle_by_value(engine_fakes)
summary = run_job(JobSpec.model_validate_json({job_json!r}), RunOptions(num_cpus=2),
                  pipeline_factory=engine_fakes.fake_factory)
print("SUMMARY", summary.ok, summary.failed, summary.skipped, flush=True)
"""


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return env


def _job(tmp_path: Path, ids: list[str], **changes: object) -> JobSpec:
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"identity_id": ids, "scenario": ["random"] * len(ids),
                             "seed": list(range(len(ids)))}), manifest)
    base = {"name": "t", "manifest": str(manifest), "output_dir": str(tmp_path / "run"),
            "guide": {"iterations": 600}, "resources": {"cpus_per_actor": 1}, "num_actors": 2, "max_attempts": 2}
    return JobSpec.model_validate({**base, **changes})


def _driver(tmp_path: Path, job: JobSpec, name: str) -> subprocess.Popen[str]:
    script = tmp_path / f"{name}.py"
    script.write_text(DRIVER.format(fakes_dir=str(Path(engine_fakes.__file__).parent), job_json=job.model_dump_json()))
    return subprocess.Popen([sys.executable, str(script)], start_new_session=True, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition, what: str, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _n_results(job: JobSpec) -> int:
    folder = job.run_dir / "results"
    return len(list(folder.glob("*.parquet"))) if folder.is_dir() else 0


def _session_members(sid: int) -> list[int]:
    """Live processes in session `sid` (a driver started with start_new_session leads its own)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _kill_session(sid: int) -> None:
    for pid in _session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_two_runs_on_one_folder_second_refused_nothing_lost(tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(6)]
    job = _job(tmp_path, ids)
    first = _driver(tmp_path, job, "first")
    try:
        _wait_for(lambda: _n_results(job) >= 1, "the first run's first commit")
        # the second run, the way a user starts it: the CLI on the same job and folder
        job_yaml = tmp_path / "job.yaml"
        job_yaml.write_text(yaml.safe_dump(json.loads(job.model_dump_json())))
        second = subprocess.run([sys.executable, "-m", "guide_ray.cli", "run", str(job_yaml), "--no-progress"],
                                capture_output=True, text=True, timeout=120, env=_env())
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if line.startswith("guide-ray run: error:")]
        assert len(errors) == 1 and "Traceback" not in second.stderr
        assert f"is in use by another guide-ray run (host {os.uname().nodename}, pid {first.pid}, started" in errors[0]
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err[-3000:]
    finally:
        _kill_session(first.pid)
    assert "SUMMARY 6 0 0" in out
    rows = results.committed(job.run_dir)
    assert set(rows) == set(ids) and all(r.status == "ok" and r.attempts == 1 for r in rows.values())
    for row in rows.values():
        folder = job.run_dir / row.artifact_weights
        assert folder.read_bytes() == f"weights of {row.identity_id} seed {row.seed}".encode()
    calls = [json.loads(line)["id"] for line in (job.run_dir / "calls.jsonl").read_text().splitlines()]
    assert sorted(calls) == sorted(ids)  # the refused run computed nothing


def test_killed_driver_leftovers_are_ended_by_the_next_run(tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(6)]
    job = _job(tmp_path, ids)
    first, second = _driver(tmp_path, job, "first"), None
    try:
        _wait_for(lambda: _n_results(job) >= 2, "two commits")
        record = json.loads((job.run_dir / "ray_local.json").read_text())
        assert record["driver_pid"] == first.pid
        os.kill(first.pid, signal.SIGKILL)  # the driver only, as the OOM killer would
        first.wait(timeout=30)
        time.sleep(2)  # let Ray's own fate-sharing take down what it can
        survivors = _session_members(first.pid)
        # Ray 2.60 leaves its dashboard and runtime-env agents running after a SIGKILL of the driver
        assert survivors, "Ray now ends every process itself; the leftover handling is no longer exercised"
        second = _driver(tmp_path, job, "second")
        out, err = second.communicate(timeout=300)
        assert second.returncode == 0, err[-3000:]
    finally:
        _kill_session(first.pid)
        if second is not None:
            _kill_session(second.pid)
    assert "leftover Ray process(es) of this run's earlier local cluster" in err
    assert f"driver pid {first.pid}" in err
    assert _session_members(first.pid) == []
    assert not (job.run_dir / "ray_local.json").exists()  # the clean exit forgot its own cluster
    rows = results.committed(job.run_dir)
    assert set(rows) == set(ids)


def test_run_exit_codes_and_foreign_folders(tmp_path: Path) -> None:
    """0 all ok, 1 rejected rows, 2 could not start (a foreign folder, untouched), 130 on Ctrl-C then resume."""
    def cli(job_file: Path, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "guide_ray.cli", "run", str(job_file), "--no-progress",
                                 "--num-cpus", "2", *extra], env=_env(), text=True, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def job_file(name: str, **changes: object) -> Path:
        spec = {"name": name, "manifest": {"generate": "random", "n": 2, "seed": 0}, "model": {"backend": "tiny"},
                "guide": {"iterations": 6}, "metrics": ["ID"], "device": "cpu", "num_actors": 1,
                "resources": {"gpus_per_actor": 0, "cpus_per_actor": 1}, "output_dir": str(tmp_path / name)}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**spec, **changes}))
        return path

    # 2: a folder that is not a run is refused, and nothing in it is touched
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"precious")
    proc = cli(job_file("photos"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "is not a guide-ray run folder" in err and "Traceback" not in err
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]

    # 1: every manifest row rejected (no Ray needed); the report says so
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"identity_id": ["x y", "a\nb"], "scenario": ["random", "random"], "seed": [1, 2]}), bad)
    proc = cli(job_file("rejected", manifest=str(bad)))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    assert "2 invalid manifest rows" in out and "a\\nb" in err and "\na\n" not in err  # ids escaped in logs

    # 130: Ctrl-C after the first commit; then 0: the resume finishes without recomputing it
    slow = job_file("interrupted", guide={"iterations": 15})
    run_dir = tmp_path / "interrupted"
    ownership.adopt(run_dir)
    (run_dir / "notes.txt").write_text("my notes")  # a user's file in a run folder is never touched
    proc = cli(slow)
    try:
        _wait_for(lambda: len(list((run_dir / "results").glob("*.parquet"))) >= 1 if (run_dir / "results").is_dir()
                  else False, "the first commit", timeout=400)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        _kill_session(proc.pid)
    assert proc.returncode == 130, err[-2000:]
    done = results.committed(run_dir)
    assert 1 <= len(done) < 2
    first_mtime = {i: results.result_path(run_dir, i).stat().st_mtime_ns for i in done}
    proc = cli(slow)
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        _kill_session(proc.pid)
    assert proc.returncode == 0, err[-2000:]
    assert "1 ok, 0 failed, 1 already done" in out
    assert {i: results.result_path(run_dir, i).stat().st_mtime_ns for i in done} == first_mtime
    assert (run_dir / "notes.txt").read_text() == "my notes"


def test_dry_run_and_report_survive_damaged_files(tmp_path: Path) -> None:
    """`run --dry-run` and `report` quarantine a damaged result file instead of a traceback."""
    job = {"name": "dry", "manifest": {"generate": "random", "n": 3, "seed": 0}, "model": {"backend": "tiny"},
           "guide": {"iterations": 2}, "metrics": ["ID"], "device": "cpu", "output_dir": str(tmp_path / "run")}
    job_yaml = tmp_path / "dry.yaml"
    job_yaml.write_text(yaml.safe_dump(job))
    ownership.adopt(tmp_path / "run")
    (tmp_path / "run" / "results").mkdir()
    (tmp_path / "run" / "results" / "random-0001.parquet").write_bytes(b"PAR1 truncated")
    dry = subprocess.run([sys.executable, "-m", "guide_ray.cli", "run", str(job_yaml), "--dry-run"],
                         capture_output=True, text=True, timeout=120, env=_env())
    assert dry.returncode == 0 and "Traceback" not in dry.stderr, dry.stderr[-2000:]
    assert "to run: 3, already done: 0" in dry.stdout and "quarantined results/random-0001.parquet" in dry.stderr
    (tmp_path / "run" / "results" / "random-0002.parquet").write_bytes(b"")
    report = subprocess.run([sys.executable, "-m", "guide_ray.cli", "report", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120, env=_env())
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr[-2000:]
    assert "1 damaged result file(s) moved to quarantine/" in report.stdout
    assert len(list((tmp_path / "run" / "quarantine").glob("*.parquet.*"))) == 2
