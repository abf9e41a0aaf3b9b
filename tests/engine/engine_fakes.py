"""A fake pipeline for engine tests: sleeps instead of unlearning, logs every call, obeys item names.

Behaviour by identity_id prefix (so one manifest exercises every path):
  bad-*     raises on every attempt (a poison item)
  setting-* raises the same error, word for word, on every attempt (a bad job setting)
  photo-*   raises BadImage (a guide-ray error: the same input fails the same way)
  flaky-*   raises on the first attempt only
  victim-*  on its first attempt writes RUN/victim.started (its actor's name) and sleeps 30 s, so a
            test can kill the actor mid-identity; later attempts run normally
otherwise it sleeps guide.iterations milliseconds. Every call appends one JSON line to
RUN/calls.jsonl; prepare() appends 'computed' or 'cached' to RUN/prepare.log.
Kept out of the shipped package; Ray tests ship it to workers by value (cloudpickle).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.utils.files import atomic_file


@dataclass(frozen=True)
class FakeOutcome:
    metrics: dict[str, float | None]
    loss_first: float
    loss_last: float
    loss_min: float
    iterations: int
    artifacts: dict[str, str] = field(default_factory=dict)
    stand_in: bool = True
    seconds: float = 0.0
    id_views_unaligned: int | None = None


def _append(path: Path, line: str) -> None:
    with path.open("a") as fh:  # O_APPEND: one short write per line, safe across processes
        fh.write(line + "\n")


def _actor_name() -> str:
    import ray

    if not ray.is_initialized():  # called in-process, without Ray
        return "in-process"
    return ray.get_runtime_context().get_actor_name() or "driver"


class FakePipeline:
    def __init__(self, job: JobSpec, device: str) -> None:
        self.job, self.device = job, device

    def prepare(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        stats = cache_dir / "fake-stats.json"
        state = "cached" if stats.exists() else "computed"
        if state == "computed":
            stats.write_text("{}")
        _append(self.job.run_dir / "prepare.log", state)

    def run(self, item: WorkItem, out_dir: Path) -> FakeOutcome:
        start = time.time()
        run_dir = self.job.run_dir
        attempt_marker = run_dir / f"attempted.{item.identity_id}"
        first = not attempt_marker.exists()
        attempt_marker.touch()
        record = {"id": item.identity_id, "pid": os.getpid(), "actor": _actor_name(), "start": start}
        _append(run_dir / "calls.jsonl", json.dumps(record))
        if item.identity_id.startswith("bad"):
            raise ValueError(f"cannot read image for {item.identity_id}")
        if item.identity_id.startswith("setting"):
            raise ValueError("lambda_adj=-1 makes the adjacency loss unbounded")
        if item.identity_id.startswith("photo"):
            from guide_ray.errors import BadImage

            raise BadImage(f"{item.identity_id}: not a face photo")
        if item.identity_id.startswith("flaky") and first:
            raise RuntimeError("CUDA out of memory (simulated)")
        if item.identity_id.startswith("victim") and first:
            (run_dir / "victim.started").write_text(_actor_name())
            time.sleep(30)
        time.sleep(item.guide.iterations / 1000)
        with atomic_file(out_dir / "G_u.pt") as tmp:
            tmp.write_bytes(f"weights of {item.identity_id} seed {item.seed}".encode())
        with atomic_file(out_dir / "grid.png") as tmp:
            tmp.write_bytes(b"png")
        _append(run_dir / "finished.jsonl", json.dumps({**record, "end": time.time()}))
        metrics = {"ID": (item.seed % 100) / 1000, "ID_others": None}
        if "FID_pre" in self.job.metrics:
            metrics["FID_pre"] = 1.5
        return FakeOutcome(metrics=metrics, loss_first=1.0, loss_last=0.2, loss_min=0.1,
                           iterations=item.guide.iterations,
                           artifacts={"weights": str(out_dir / "G_u.pt"), "grid": str(out_dir / "grid.png")},
                           seconds=time.time() - start)


def fake_factory(job: JobSpec, device: str) -> FakePipeline:
    return FakePipeline(job, device)


def missing_weights_factory(job: JobSpec, device: str) -> FakePipeline:
    from guide_ray.errors import WeightsMissing

    raise WeightsMissing(job.run_dir / "G.pt", "put G.pt there")
