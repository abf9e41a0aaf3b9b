"""Soak test (slow): a 24-identity job whose driver is SIGKILLed and resumed several times at random
(seeded) moments while worker actors are SIGKILLed at random moments, then run to the end.

It must end with every identity committed exactly once, every `ok` row's artifacts present and
matching their SHA256SUMS, no identity computed again after it was committed, and no Ray process
of any killed driver left running.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
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

from guide_ray.config.job import JobSpec
from guide_ray.store import results

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
N_IDENTITIES = 24
DRIVER_KILLS = 4
SEED = 20261130

DRIVER = """
import json, logging, sys, time
sys.path.insert(0, {fakes_dir!r})
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
import engine_fakes
from ray import cloudpickle
from guide_ray.config.job import JobSpec
from guide_ray.engine.run import RunOptions, run_job
cloudpickle.register_pickle_by_value(engine_fakes)
job = JobSpec.model_validate_json({job_json!r})

def on_commit(row):
    with open(job.run_dir / "commits.jsonl", "a") as fh:
        fh.write(json.dumps({{"id": row.identity_id, "t": time.time()}}) + "\\n")

summary = run_job(job, RunOptions(num_cpus=2), pipeline_factory=engine_fakes.fake_factory, on_commit=on_commit)
print("SUMMARY", summary.ok, summary.failed, summary.skipped, flush=True)
"""


def _session_members(sid: int) -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def _kill_actors_at_random(sid: int, rng: random.Random, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL one worker actor process of driver session `sid` every 2-6 s (choices from `rng`)."""
    while not stop.wait(rng.uniform(2.0, 6.0)):
        actors = sorted(pid for pid, cmd in _session_members(sid).items() if cmd.startswith("ray::ActorWorker"))
        if actors:
            victim = rng.choice(actors)
            try:
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
            except ProcessLookupError:
                pass


def test_soak_driver_and_actor_kills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ids = [f"s{i:02d}" for i in range(N_IDENTITIES)]
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"identity_id": ids, "scenario": ["random"] * len(ids),
                             "seed": list(range(len(ids)))}), manifest)
    job = JobSpec.model_validate({
        "name": "soak", "manifest": str(manifest), "output_dir": str(tmp_path / "run"),
        "guide": {"iterations": 700}, "resources": {"cpus_per_actor": 1}, "num_actors": 2, "prefetch": 1,
        "max_attempts": 5})
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(fakes_dir=str(Path(engine_fakes.__file__).parent), job_json=job.model_dump_json()))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    drivers: list[int] = []
    actor_kills: list[int] = []
    started = time.monotonic()

    for round_ in range(DRIVER_KILLS + 1):
        driver = subprocess.Popen([sys.executable, str(script)], start_new_session=True, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        drivers.append(driver.pid)
        stop = threading.Event()
        killer = threading.Thread(target=_kill_actors_at_random,
                                  args=(driver.pid, random.Random(rng.random()), stop, actor_kills), daemon=True)
        killer.start()
        try:
            if round_ < DRIVER_KILLS:
                before = _n_results(job)
                target = before + rng.randint(1, 4)
                deadline = time.monotonic() + 180
                while _n_results(job) < min(target, N_IDENTITIES - 1) and driver.poll() is None:
                    assert time.monotonic() < deadline, "no progress"
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 1.5))  # a random moment, often mid-identity or mid-commit
                os.kill(driver.pid, signal.SIGKILL)
                driver.wait(timeout=60)
            else:
                out, _ = driver.communicate(timeout=600)
                assert driver.returncode == 0, out[-4000:]
        finally:
            stop.set()
            killer.join(timeout=10)
            if round_ == DRIVER_KILLS:
                for pid in _session_members(driver.pid):
                    os.kill(pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    print(f"soak: {elapsed:.0f} s, {len(drivers)} drivers ({DRIVER_KILLS} killed), {len(actor_kills)} actor kills")

    assert "leftover Ray process(es) of this run's earlier local cluster" in out  # the last killed driver's
    for sid in drivers[:-1]:
        assert _session_members(sid) == {}, f"processes of killed driver {sid} still run"
    rows = results.committed(job.run_dir)
    assert sorted(rows) == ids and all(r.status == "ok" for r in rows.values())
    assert not (job.run_dir / "quarantine").exists() or not list((job.run_dir / "quarantine").glob("*.parquet.*"))
    for row in rows.values():  # artifacts present and matching the checksums written at commit
        folder = job.run_dir / "artifacts" / row.identity_id
        assert row.artifact_weights == f"artifacts/{row.identity_id}/G_u.pt"
        sums = dict(reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines())
        assert set(sums) == {"G_u.pt", "grid.png"}
        for name, digest in sums.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        assert (folder / "G_u.pt").read_bytes() == f"weights of {row.identity_id} seed {row.seed}".encode()
    commits = [json.loads(line) for line in (job.run_dir / "commits.jsonl").read_text().splitlines()]
    assert max(Counter(c["id"] for c in commits).values()) == 1  # never committed twice
    committed_at = {c["id"]: c["t"] for c in commits}
    for i in ids:  # a kill between commit and the log line loses the line: the file's mtime still counts
        committed_at[i] = min(committed_at.get(i, float("inf")), results.result_path(job.run_dir, i).stat().st_mtime)
    calls = [json.loads(line) for line in (job.run_dir / "calls.jsonl").read_text().splitlines()]
    recomputed = [c["id"] for c in calls if c["start"] > committed_at[c["id"]]]
    assert recomputed == []  # nothing that had finished was computed again
    assert len(actor_kills) >= 1  # the actor killer did strike


def _n_results(job: JobSpec) -> int:
    folder = job.run_dir / "results"
    return len(list(folder.glob("*.parquet"))) if folder.is_dir() else 0
