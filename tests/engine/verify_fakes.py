"""A fake verifier for the verify engine tests: no torch work, logs every call, obeys item names.

`victim-*` sleeps 30 s on its first attempt (so a test can kill the driver mid-identity);
`broken-*` raises on every attempt; otherwise it sleeps guide.iterations milliseconds. Every call
appends {"id", "pid"} to RUN/verify_calls.jsonl. Shipped to Ray workers by value (cloudpickle).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.verify import VerifySpec
from guide_ray.verify.collateral import collateral
from guide_ray.verify.suite import VerifyOutcome


class FakeVerifier:
    stand_in = True

    def __init__(self, job: JobSpec, spec: VerifySpec, device: str) -> None:
        self.job, self.spec = job, spec

    def threshold(self) -> float:
        return 0.5 if self.spec.threshold is None else self.spec.threshold

    def verify(self, item: WorkItem, unlearned: Path, out_dir: Path) -> VerifyOutcome:
        run_dir = self.job.run_dir
        marker = run_dir / f"verify-attempted.{item.identity_id}"
        first = not marker.exists()
        marker.touch()
        with (run_dir / "verify_calls.jsonl").open("a") as fh:
            fh.write(json.dumps({"id": item.identity_id, "pid": os.getpid()}) + "\n")
        if not unlearned.is_file():
            raise FileNotFoundError(unlearned)
        if item.identity_id.startswith("broken"):
            raise ValueError(f"cannot attack {item.identity_id}")
        if item.identity_id.startswith("victim") and first:
            time.sleep(30)
        time.sleep(item.guide.iterations / 1000)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = {name: out_dir / f"{name}.png" for name in ("attack", "collateral")}
        for path in images.values():
            path.write_bytes(b"png")
        eye = torch.eye(3)
        worst = 0.1 + (item.seed % 10) / 10
        return VerifyOutcome(
            same_latent=0.1, id_worst=worst, attack_worst="encoder", attack_scores={"same-latent": 0.1, "encoder": worst},
            others_worst=None, others_attack=None, relearn_steps=None, relearn_best=0.2, threshold=self.threshold(),
            forgotten=worst <= self.threshold(),
            collateral=collateral(eye, eye, eye[0], torch.arange(3.0).view(3, 1, 1), torch.zeros(1, 1, 1)),
            images={k: str(v) for k, v in images.items()}, stand_in=True, seconds=0.0)


def fake_verifier(job: JobSpec, spec: VerifySpec, device: str) -> FakeVerifier:
    return FakeVerifier(job, spec, device)
