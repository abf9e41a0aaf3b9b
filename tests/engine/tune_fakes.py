"""A fake per-identity core for Tune tests: metrics are a fixed function of the trial's config, no torch.

ID = 1 / (1 + d / 10) (a larger d forgets more), FID_pre = alpha_max / 10 and LPIPS_drift =
alpha_max / 100 (a wider neighbourhood damages more), the same for every identity, so a test knows
each trial's objective exactly.
Every call appends {"id", "d", "alpha_max"} to <output>/calls.jsonl (output = two folders above the
trial's run folder), so a test can count what was computed. The hook, if any, sees `iterations` steps.
If <output>/interrupt.pid exists and names a process ("PID", or "PID D" to pick the trial's d; 40 by
default), identity random-0001 of a trial with that d waits for the driver to take in the first
identity's checkpoint, sends that process SIGINT and sleeps, so a test can interrupt the driver
mid-search (once: the file is removed).
Shipped to Ray workers by value (cloudpickle), like engine_fakes.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from guide_ray.config.job import JobSpec, WorkItem


@dataclass(frozen=True)
class FakeOutcome:
    metrics: dict[str, float | None]
    stand_in: bool = True
    seconds: float = 0.0
    artifacts: dict[str, str] = field(default_factory=dict)


class FakeTunePipeline:
    def __init__(self, job: JobSpec, device: str) -> None:
        self.job, self.device = job, device
        self.output = Path(job.output_dir).parent.parent

    def prepare(self, cache_dir: Path) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)

    def run(self, item: WorkItem, out_dir: Path, on_step=None) -> FakeOutcome:  # noqa: ANN001
        g = item.guide
        with (self.output / "calls.jsonl").open("a") as fh:
            fh.write(json.dumps({"id": item.identity_id, "d": g.d, "alpha_max": g.alpha_max,
                                 "seed": item.seed, "run_key": item.run_key}) + "\n")
        trigger = self.output / "interrupt.pid"
        fields = trigger.read_text().split() if trigger.exists() else []
        if fields and g.d == float(fields[1] if len(fields) > 1 else 40) and item.identity_id == "random-0001":
            pid = int(fields[0])
            trigger.unlink()
            time.sleep(3)
            os.kill(pid, signal.SIGINT)
            time.sleep(20)
        for step in range(g.iterations):
            if on_step is not None:
                on_step(step, SimpleNamespace(total=1.0 / (step + 1)))
        time.sleep(0.05)
        return FakeOutcome(metrics={"ID": 1.0 / (1.0 + g.d / 10.0), "ID_others": None,
                                    "FID_pre": g.alpha_max / 10.0, "delta_FID_real": None,
                                    "LPIPS_drift": g.alpha_max / 100.0})
