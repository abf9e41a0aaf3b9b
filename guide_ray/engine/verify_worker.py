"""VerifyWorker: the plain class a verify actor wraps; the verification twin of IdentityWorker.

Free of `import ray` (engine.actors wraps it). It holds one Verifier (G_s, loss and metric
networks, the calibrated threshold), built on first use; `process(item)` never raises for a
per-item problem: any `Exception` becomes a `failed` VerifyRow the driver can retry or commit.
Each attempt writes its images into a fresh RUN/verify/staging/<id>.<token>/ folder; the driver
promotes it when it commits the row.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import Field

from guide_ray import __version__
from guide_ray.config.base import StrictModel
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.verify import VerifySpec
from guide_ray.engine.worker import Placement, describe_exception
from guide_ray.store.artifacts import attempt_dir, relative_to_run
from guide_ray.store.schema import utc_now
from guide_ray.store.verify import VerifyRow, verify_dir
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)


class VerifyItem(StrictModel):
    """One identity to verify: its work item as the run built it, its G_u artifact and its ID."""

    identity_id: str
    work: WorkItem = Field(description="the identity's WorkItem, rebuilt from the run's job and manifest")
    unlearned: str = Field(description="absolute path of the identity's unlearned_synthesis.pt")
    ID: float | None = Field(description="same-latent ID of its result row")
    verify_key: str


class VerifierLike(Protocol):
    """What a worker holds; guide_ray.verify.suite.Verifier satisfies it."""

    stand_in: bool

    def threshold(self) -> float: ...

    def verify(self, item: WorkItem, unlearned: Path, out_dir: Path): ...  # noqa: ANN201 (VerifyOutcome)


VerifierFactory = Callable[[JobSpec, VerifySpec, str], VerifierLike]


def default_verifier_factory(job: JobSpec, spec: VerifySpec, device: str) -> VerifierLike:
    """The real attack suite, imported only inside the worker process (torch lives there)."""
    from guide_ray.verify.suite import Verifier

    return Verifier(job, spec, device)


class VerifyWorker:
    """Holds one Verifier and turns VerifyItems into VerifyRows (see module docstring)."""

    def __init__(self, job: JobSpec, spec: VerifySpec, placement: Placement,
                 factory: VerifierFactory | None = None) -> None:
        self.job, self.spec, self.placement = job, spec, placement
        self._factory = factory or default_verifier_factory
        self._verifier: VerifierLike | None = None

    def __repr__(self) -> str:  # Ray's log prefix
        return f"VerifyWorker({self.placement.worker}, {self.placement.label})"

    def ready(self) -> Placement:
        """Load the networks (once) and report where this worker runs."""
        self._load()
        return self.placement

    def prepare(self) -> None:
        """Calibrate the match threshold (once per process; the user's threshold costs nothing)."""
        self._load().threshold()

    def process(self, item: VerifyItem) -> VerifyRow:
        """Verify one identity; never raises an `Exception`, returns a failed row instead."""
        started = time.monotonic()
        log.info("%s: verify %s", self.placement.worker, escape(item.identity_id))
        try:
            out_dir = attempt_dir(verify_dir(self.job.run_dir), item.identity_id)
            outcome = self._load().verify(item.work, Path(item.unlearned), out_dir)
            return self._ok_row(item, outcome, time.monotonic() - started)
        except Exception as exc:  # the one broad catch: any per-item failure becomes a row
            log.exception("%s: verifying %s failed", self.placement.worker, escape(item.identity_id))
            return verify_failed_row(item, describe_exception(exc), time.monotonic() - started,
                                     placement=self.placement)

    def _load(self) -> VerifierLike:
        if self._verifier is None:
            self._verifier = self._factory(self.job, self.spec, self.placement.device)
        return self._verifier

    def _ok_row(self, item: VerifyItem, outcome, seconds: float) -> VerifyRow:  # noqa: ANN001 (VerifyOutcome)
        run_dir, spec, damage = self.job.run_dir, self.spec, outcome.collateral
        images = {k: relative_to_run(run_dir, p) for k, p in outcome.images.items()}
        return VerifyRow(
            **_item_fields(item), status="ok", ID=item.ID, ID_same=outcome.same_latent, ID_worst=outcome.id_worst,
            attack_worst=outcome.attack_worst, ID_others_worst=outcome.others_worst,
            attack_others_worst=outcome.others_attack, attack_scores=json.dumps(outcome.attack_scores, sort_keys=True),
            attack_steps=spec.attack_steps, relearn_steps=outcome.relearn_steps, relearn_budget=spec.relearn_steps,
            relearn_ID=outcome.relearn_best, verdict="forgotten" if outcome.forgotten else "not forgotten",
            threshold=outcome.threshold, threshold_source=spec.threshold_source,
            collateral_drift=damage.drift_mean, collateral_slope_emb=damage.slope_emb,
            collateral_slope_w=damage.slope_w, diversity_ratio=damage.diversity_ratio, probes=spec.probes,
            verify_seed=spec.seed, artifact_attack=images.get("attack"), artifact_collateral=images.get("collateral"),
            seconds=seconds, worker=self.placement.worker, node=self.placement.node, device=self.placement.label,
            stand_in=outcome.stand_in, code_version=__version__, finished_at=utc_now())


def verify_failed_row(item: VerifyItem, error: str, seconds: float, *, placement: Placement,
                      job_key: str = "") -> VerifyRow:
    """A `failed` VerifyRow, from the worker (exception) or the driver (worker death); `job_key`
    is accepted for the scheduler's FailedRow signature (a verify row is keyed by verify_key)."""
    return VerifyRow(**_item_fields(item), status="failed", error=error, ID=item.ID, seconds=seconds,
                     worker=placement.worker, node=placement.node, device=placement.label,
                     code_version=__version__, finished_at=utc_now())


def _item_fields(item: VerifyItem) -> dict[str, object]:
    w = item.work
    return {"identity_id": item.identity_id, "backend": w.backend, "scenario": w.scenario, "variant": w.variant,
            "seed": w.seed, "run_key": w.run_key, "verify_key": item.verify_key}
