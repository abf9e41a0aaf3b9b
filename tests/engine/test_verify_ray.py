"""`guide-ray verify` on a real local Ray cluster with the fake pipeline and the fake verifier.

A run folder is made by the real engine (fake unlearning, real result rows and artifacts); then:
every identity verified exactly once, a second verification recomputes nothing, a killed
verification process resumes without recomputing its committed rows, failures become rows, and
bad input (not a run, unknown identity, no threshold on a real backend) is one clear error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import engine_fakes
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import verify_fakes
from local_ray import local_cluster

from guide_ray.config.job import JobSpec
from guide_ray.engine.run import run_job
from guide_ray.engine.verify import VerifyOptions, verify_run
from guide_ray.errors import ConfigError
from guide_ray.reduce.report import write_report
from guide_ray.store.verify import load_verify_rows, row_path

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():  # noqa: ANN201
    with local_cluster(engine_fakes, verify_fakes, num_gpus=None):
        yield


def _run(tmp_path: Path, ids: list[str], **changes: object) -> JobSpec:
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"identity_id": ids, "scenario": ["random"] * len(ids), "seed": list(range(len(ids)))}),
                   manifest)
    job = JobSpec.model_validate({"name": "t", "manifest": str(manifest), "output_dir": str(tmp_path / "run"),
                                  "guide": {"iterations": 50}, "resources": {"cpus_per_actor": 1}, "num_actors": 2,
                                  "max_attempts": 2, "metrics": ["ID"], **changes})
    assert run_job(job, pipeline_factory=engine_fakes.fake_factory).ok == len(ids)
    return job


def _calls(job: JobSpec) -> Counter[str]:
    path = job.run_dir / "verify_calls.jsonl"
    return Counter(json.loads(line)["id"] for line in path.read_text().splitlines()) if path.exists() else Counter()


def test_every_identity_verified_once_and_a_second_run_recomputes_nothing(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "broken-1"]
    job = _run(tmp_path, ids)
    summary = verify_run(job.run_dir, factory=verify_fakes.fake_verifier)
    assert (summary.ok, summary.failed, summary.skipped) == (3, 1, 0)
    rows = {r.identity_id: r for r in load_verify_rows(job.run_dir)}
    assert set(rows) == set(ids)
    assert rows["broken-1"].status == "failed" and rows["broken-1"].error == "ValueError: cannot attack broken-1"
    assert rows["a"].verdict == "forgotten" and rows["a"].threshold == 0.5 and rows["a"].ID is not None
    assert rows["a"].artifact_attack == "verify/artifacts/a/attack.png"
    assert (job.run_dir / rows["a"].artifact_attack).is_file()
    stamps = {i: row_path(job.run_dir, i).stat().st_mtime_ns for i in ids}
    calls = _calls(job)
    again = verify_run(job.run_dir, factory=verify_fakes.fake_verifier)
    assert (again.ok, again.failed, again.skipped) == (0, 0, 4)
    assert _calls(job) == calls                                         # nothing recomputed
    assert {i: row_path(job.run_dir, i).stat().st_mtime_ns for i in ids} == stamps
    table = write_report(job.run_dir).markdown
    assert "ID_worst ↓" in table and "forgotten ↑" in table


DRIVER = """
import sys
sys.path.insert(0, {fakes_dir!r})
import ray
from ray import cloudpickle
import verify_fakes
from pathlib import Path
from guide_ray.engine.verify import verify_run
cloudpickle.register_pickle_by_value(verify_fakes)
ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20)
verify_run(Path({run_dir!r}), factory=verify_fakes.fake_verifier)
"""


def test_a_killed_verification_resumes_without_recomputing(tmp_path: Path) -> None:
    ids = ["a", "b", "victim-1", "c"]
    job = _run(tmp_path, ids, num_actors=1)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(fakes_dir=str(Path(verify_fakes.__file__).parent), run_dir=str(job.run_dir)))
    driver = subprocess.Popen([sys.executable, str(script)], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(list((job.run_dir / "verify").glob("*.parquet"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # only the process group this test started
        driver.wait(timeout=30)
    done = {r.identity_id for r in load_verify_rows(job.run_dir)}
    assert done == {"a", "b"}                                           # the victim was mid-flight
    summary = verify_run(job.run_dir, factory=verify_fakes.fake_verifier)
    assert summary.skipped == 2 and summary.ok == 2
    assert all(_calls(job)[i] == 1 for i in done)
    assert {r.identity_id for r in load_verify_rows(job.run_dir)} == set(ids)


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is not a guide-ray run folder"):
        verify_run(tmp_path / "photos", factory=verify_fakes.fake_verifier)
    job = _run(tmp_path, ["a"])
    with pytest.raises(ConfigError, match="unknown identity 'nobody'"):
        verify_run(job.run_dir, VerifyOptions(identities=("nobody",)), factory=verify_fakes.fake_verifier)
    assert not (job.run_dir / "verify").exists()                       # nothing was written
