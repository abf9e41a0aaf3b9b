"""The engine on a real local Ray cluster (2 CPUs, logical GPUs) with the fake pipeline.

Covers: every identity committed exactly once (with poison and flaky items), an actor killed
mid-identity (restarted, or gone for good and replaced), per-item timeouts, an interrupted run
(Ctrl-C in the driver loop; SIGKILL of a driver process) resumed without recomputing, bad
manifest rows, fractional GPUs, and typed start-up errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import engine_fakes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from local_ray import local_cluster

from guide_ray.config.job import JobSpec
from guide_ray.engine.run import run_job
from guide_ray.errors import WeightsMissing
from guide_ray.store import results

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():  # noqa: ANN201
    with local_cluster(engine_fakes):
        yield


def _manifest(path: Path, ids: list[str], **extra: list) -> str:
    pq.write_table(pa.table({"identity_id": ids, "scenario": ["random"] * len(ids),
                             "seed": list(range(len(ids))), **extra}), path)
    return str(path)


def _job(tmp_path: Path, ids: list[str], **changes: object) -> JobSpec:
    base = {"name": "t", "manifest": _manifest(tmp_path / "m.parquet", ids), "output_dir": str(tmp_path / "run"),
            "guide": {"iterations": 100}, "resources": {"cpus_per_actor": 1}, "num_actors": 2, "max_attempts": 2}
    return JobSpec.model_validate({**base, **changes})


def _calls(job: JobSpec) -> Counter[str]:
    path = job.run_dir / "calls.jsonl"
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines()) if path.exists() else Counter()


class CommitLog:
    def __init__(self, stop_after: int | None = None) -> None:
        self.ids: list[str] = []
        self.stop_after = stop_after

    def __call__(self, row) -> None:  # noqa: ANN001
        self.ids.append(row.identity_id)
        if self.stop_after is not None and len(self.ids) >= self.stop_after:
            raise KeyboardInterrupt  # what Ctrl-C does to the driver loop


def _kill_when_started(job: JobSpec, *, no_restart: bool) -> threading.Thread:
    def watch() -> None:
        marker = job.run_dir / "victim.started"
        deadline = time.monotonic() + 25
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # well inside the 30 s the victim sleeps
        ray.kill(ray.get_actor(marker.read_text()), no_restart=no_restart)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("prefetch", [0, 1])
def test_exactly_once_with_poison_and_flaky_items(tmp_path: Path, prefetch: int) -> None:
    ids = ["a", "b", "bad-1", "c", "flaky-1", "d"]
    job = _job(tmp_path, ids, prefetch=prefetch)
    log = CommitLog()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=log)
    assert Counter(log.ids) == Counter(ids)  # one commit per identity, no more
    rows = results.committed(job.run_dir)
    assert (summary.ok, summary.failed) == (5, 1)
    assert rows["bad-1"].status == "failed" and rows["bad-1"].attempts == 2
    assert rows["bad-1"].error == "ValueError: cannot read image for bad-1"
    assert rows["flaky-1"].status == "ok" and rows["flaky-1"].attempts == 2
    assert _calls(job) == Counter({"a": 1, "b": 1, "c": 1, "d": 1, "bad-1": 2, "flaky-1": 2})
    assert all(r.worker.startswith("t-") and r.worker[-3:] in ("-w0", "-w1") for r in rows.values())
    again = run_job(job, pipeline_factory=engine_fakes.fake_factory)
    assert (again.skipped, again.ok, again.failed) == (6, 0, 0)
    assert _calls(job) == Counter({"a": 1, "b": 1, "c": 1, "d": 1, "bad-1": 2, "flaky-1": 2})


@pytest.mark.parametrize("no_restart", [False, True], ids=["restarted", "replaced"])
def test_worker_killed_mid_identity(tmp_path: Path, no_restart: bool) -> None:
    ids = ["victim-0", "a", "b", "c"]
    job = _job(tmp_path, ids)
    killer = _kill_when_started(job, no_restart=no_restart)
    log = CommitLog()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=log)
    killer.join(timeout=1)
    assert Counter(log.ids) == Counter(ids) and summary.ok == 4
    victim = results.committed(job.run_dir)["victim-0"]
    assert victim.status == "ok" and victim.attempts == 2 and victim.seconds < 10
    assert _calls(job) == Counter({"victim-0": 2, "a": 1, "b": 1, "c": 1})
    replacements = [p.name for p in (job.run_dir / "logs").iterdir() if "-r" in p.name]
    assert len(replacements) == (1 if no_restart else 0)  # a dead-for-good actor is replaced, once


def test_item_timeout_kills_and_retries(tmp_path: Path) -> None:
    job = _job(tmp_path, ["victim-0", "a"], item_timeout_s=2.0, num_actors=1)
    started = time.monotonic()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory)
    assert summary.ok == 2 and time.monotonic() - started < 20
    assert results.committed(job.run_dir)["victim-0"].attempts == 2


def test_interrupted_run_resumes_without_recomputing(tmp_path: Path) -> None:
    ids = [f"p{i}" for i in range(6)]
    job = _job(tmp_path, ids)
    with pytest.raises(KeyboardInterrupt):
        run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=CommitLog(stop_after=2))
    done = results.committed(job.run_dir)
    assert len(done) == 2
    mtimes = {i: results.result_path(job.run_dir, i).stat().st_mtime_ns for i in done}
    log = CommitLog()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=log)
    assert summary.skipped == 2 and summary.ok == 4
    assert set(log.ids) == set(ids) - set(done)
    assert all(_calls(job)[i] == 1 for i in done)  # finished identities never ran again
    assert {i: results.result_path(job.run_dir, i).stat().st_mtime_ns for i in done} == mtimes
    assert set(results.committed(job.run_dir)) == set(ids)


def test_bad_manifest_rows_reported_and_good_rows_processed(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"identity_id": ["ok-1", "ok-1", "x y", "ok-2", "ok-3"],
                             "scenario": ["random", "random", "random", "ffhq", "random"],
                             "seed": [1, 2, 3, 4, 5], "variant": [None, None, None, None, "guide"]}), manifest)
    job = _job(tmp_path, ["unused"], manifest=str(manifest))
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory)
    assert (summary.ok, summary.invalid_rows) == (2, 3) and not summary.clean
    assert set(results.committed(job.run_dir)) == {"ok-1", "ok-3"}
    errors = results.read_manifest_errors(job.run_dir)
    assert [(e["row"], e["identity_id"]) for e in errors] == [(1, "ok-1"), (2, "x y"), (3, "ok-2")]
    assert "duplicate" in errors[0]["reason"] and "needs a source image" in errors[2]["reason"]


def test_two_actors_share_one_logical_gpu(tmp_path: Path) -> None:
    job = _job(tmp_path, ["a", "b", "c", "d"], num_actors=None, device="cpu", guide={"iterations": 1000},
               resources={"gpus_per_actor": 0.5, "cpus_per_actor": 0.5})
    run_job(job, pipeline_factory=engine_fakes.fake_factory)
    rows = results.committed(job.run_dir).values()
    assert {r.device for r in rows} == {"cpu (GPU 0)"}
    assert len({r.worker for r in rows}) == 2  # 1 GPU / 0.5 per actor
    spans = [json.loads(line) for line in (job.run_dir / "finished.jsonl").read_text().splitlines()]
    overlapping = any(s["actor"] != t["actor"] and s["start"] < t["end"] and t["start"] < s["end"]
                      for s in spans for t in spans)
    assert overlapping  # both shares worked at the same time


def test_startup_failure_is_the_typed_error(tmp_path: Path) -> None:
    job = _job(tmp_path, ["a"])
    with pytest.raises(WeightsMissing, match=r"missing weights file .*G\.pt: put G\.pt there"):
        run_job(job, pipeline_factory=engine_fakes.missing_weights_factory)
    assert results.committed(job.run_dir) == {}
    assert not [a for a in ray.util.list_named_actors() if a.startswith("t-")]


DRIVER = """
import sys, ray
sys.path.insert(0, {fakes_dir!r})
import engine_fakes
from ray import cloudpickle
from guide_ray.config.job import JobSpec
from guide_ray.engine.run import run_job
cloudpickle.register_pickle_by_value(engine_fakes)
ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
run_job(JobSpec.model_validate_json({job_json!r}), pipeline_factory=engine_fakes.fake_factory)
"""


def test_driver_killed_leaves_only_whole_rows_and_resumes(tmp_path: Path) -> None:
    """SIGKILL the driver process (and the local cluster it started) mid-run, then resume."""
    ids = [f"p{i}" for i in range(8)]
    job = _job(tmp_path, ids, guide={"iterations": 700})
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(fakes_dir=str(Path(engine_fakes.__file__).parent), job_json=job.model_dump_json()))
    driver = subprocess.Popen([sys.executable, str(script)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list((job.run_dir / "results").glob("*.parquet"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # only the process group this test started
        driver.wait(timeout=30)
    done = results.committed(job.run_dir)  # every committed file reads back as one whole row
    assert 2 <= len(done) < len(ids)
    log = CommitLog()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=log)
    assert summary.skipped == len(done) and set(log.ids) == set(ids) - set(done)
    assert all(_calls(job)[i] == 1 for i in done)
    assert set(results.committed(job.run_dir)) == set(ids)


def test_deterministic_failures_are_not_retried(tmp_path: Path) -> None:
    ids = ["setting-0", "setting-1", "setting-2", "setting-3", "photo-1", "a", "flaky-1", "flaky-2", "flaky-3"]
    job = _job(tmp_path, ids, max_attempts=3, prefetch=0)
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory)
    rows = results.committed(job.run_dir)
    assert (summary.ok, summary.failed) == (4, 5)
    # the same out-of-memory error on 3 identities is still retried: it depends on the device's load
    assert all(rows[f"flaky-{i}"].status == "ok" and rows[f"flaky-{i}"].attempts == 2 for i in (1, 2, 3))
    calls = _calls(job)
    assert calls["photo-1"] == 1 and rows["photo-1"].attempts == 1  # BadImage: same input, same error
    assert rows["photo-1"].error == "BadImage: photo-1: not a face photo"
    # the same error on REPEAT_LIMIT (3) identities stops the retries: at most 2 calls each, not 3
    setting_calls = [calls[f"setting-{i}"] for i in range(4)]
    assert max(setting_calls) <= 2 and sum(setting_calls) < 4 * 3
    assert all(rows[f"setting-{i}"].attempts == calls[f"setting-{i}"] for i in range(4))


def test_damaged_result_files_are_quarantined_and_recomputed(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d"]
    job = _job(tmp_path, ids)
    run_job(job, pipeline_factory=engine_fakes.fake_factory)
    done = {i: results.result_path(job.run_dir, i) for i in ids}
    done["a"].write_bytes(done["a"].read_bytes()[:50])            # truncated
    done["b"].write_bytes(b"")                                      # empty
    pq.write_table(pq.read_table(done["d"]), done["c"])              # c.parquet holds d's row: d counted twice
    kept = done["d"].stat().st_mtime_ns
    log = CommitLog()
    summary = run_job(job, pipeline_factory=engine_fakes.fake_factory, on_commit=log)
    assert sorted(log.ids) == ["a", "b", "c"] and summary.skipped == 1
    assert done["d"].stat().st_mtime_ns == kept and _calls(job)["d"] == 1  # finished work is never redone
    quarantined = sorted(p.name.split(".")[0] for p in (job.run_dir / "quarantine").glob("*.parquet.*"))
    assert quarantined == ["a", "b", "c"]
    reasons = [json.loads(line)["reason"] for line in
               (job.run_dir / "quarantine" / "quarantine.jsonl").read_text().splitlines()]
    assert "holds the row of identity 'd'" in reasons[2] and reasons[0].startswith("unreadable")
    rows = results.committed(job.run_dir)
    assert set(rows) == set(ids) and all(r.status == "ok" for r in rows.values())


def test_committed_artifacts_are_promoted_and_hashed(tmp_path: Path) -> None:
    ids = ["a", "flaky-1", "victim-0"]
    job = _job(tmp_path, ids)
    killer = _kill_when_started(job, no_restart=False)
    run_job(job, pipeline_factory=engine_fakes.fake_factory)
    killer.join(timeout=1)
    for identity, row in results.committed(job.run_dir).items():
        assert row.artifact_weights == f"artifacts/{identity}/G_u.pt"
        assert_artifacts_hashed(job.run_dir, row)
    assert list((job.run_dir / "staging").iterdir()) != []  # failed and killed attempts stay staged...
    run_job(job, pipeline_factory=engine_fakes.fake_factory)
    assert list((job.run_dir / "staging").iterdir()) == []  # ...until the next run sweeps them


def assert_artifacts_hashed(run_dir: Path, row) -> None:  # noqa: ANN001
    """Every artifact of an ok row is on disk and matches the SHA256SUMS written when it was committed."""
    import hashlib

    folder = run_dir / "artifacts" / row.identity_id
    sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
    assert {"G_u.pt", "grid.png"} <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, (row.identity_id, name)
    expected = f"weights of {row.identity_id} seed {row.seed}".encode()
    assert (folder / "G_u.pt").read_bytes() == expected
