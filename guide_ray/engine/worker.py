"""IdentityWorker: the plain class a Ray actor wraps; one per GPU (or GPU share), networks loaded once.

Deliberately free of `import ray`: tests call it in-process, and `engine.actors` is the only
place that turns it into an actor. `process(item)` never raises for a per-item problem (bad
image, NaN loss, CUDA OOM, a pipeline bug): any `Exception` becomes a `failed` ResultRow the
driver can retry or commit. KeyboardInterrupt and SystemExit pass through.
The worker never writes result rows; it only returns them (the driver is the only writer).
Each attempt writes its artifacts into a fresh staging folder of its own (store.artifacts), so no
attempt can touch the artifacts of a committed row; the driver promotes them when it commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from guide_ray import __version__
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.store.artifacts import attempt_dir, relative_to_run
from guide_ray.store.schema import METRIC_COLUMNS, ResultRow, utc_now
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


class Outcome(Protocol):
    """What `Pipeline.run` returns (guide_ray.pipeline.ItemOutcome satisfies it)."""

    metrics: dict[str, float | None]
    loss_first: float
    loss_last: float
    loss_min: float
    iterations: int
    artifacts: dict[str, str]
    stand_in: bool
    seconds: float
    id_views_unaligned: int | None


class PipelineLike(Protocol):
    """Everything a worker holds on its device; see guide_ray.pipeline.Pipeline."""

    def prepare(self, cache_dir: Path) -> None: ...

    def run(self, item: WorkItem, out_dir: Path) -> Outcome: ...


PipelineFactory = Callable[[JobSpec, str], PipelineLike]
# (item, error, seconds, *, placement, job_key) → the driver's failed row for an item (see failed_row)
FailedRow = Callable[..., object]


@dataclass(frozen=True)
class Placement:
    """Where a worker runs; copied into every row it produces."""

    worker: str                  # actor name
    node: str                    # Ray node id, or the host name outside Ray
    device: str                  # torch device the pipeline gets: "cuda:0", "cpu"
    gpu_ids: tuple[str, ...] = ()  # Ray's GPU ids for this actor (logical on a CPU-only test cluster)

    @property
    def label(self) -> str:
        """The row's `device` column, e.g. "cuda:0 (GPU 3)" or "cpu"."""
        return f"{self.device} (GPU {','.join(self.gpu_ids)})" if self.gpu_ids else self.device


def default_pipeline_factory(job: JobSpec, device: str) -> PipelineLike:
    """The real unlearning pipeline, imported only inside the worker process (torch lives there); it plans
    `micro_batch: auto` with this actor's share of the device (its neighbours run the same job)."""
    import torch

    from guide_ray.guide.memory import memory_share
    from guide_ray.pipeline import Pipeline

    share = memory_share(torch.device(device), job.resources.gpus_per_actor, job.resources.cpus_per_actor)
    return Pipeline(job, device, memory_share=share)


def describe_exception(exc: BaseException) -> str:
    """'Type: message', capped, for the row's `error` column."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class IdentityWorker:
    """Holds one pipeline and turns WorkItems into ResultRows.

    The pipeline is built on first use (ready/prepare/process), so a construction failure such as
    missing weights reaches the driver as the original typed error from `ready()`. A Ray restart
    re-runs `__init__`, which is cheap and side-effect free; the rebuild happens on the next call.
    """

    def __init__(
        self,
        job: JobSpec,
        job_key: str,
        placement: Placement,
        pipeline_factory: PipelineFactory | None = None,
    ) -> None:
        self.job, self.job_key, self.placement = job, job_key, placement
        self._factory = pipeline_factory or default_pipeline_factory
        self._pipeline: PipelineLike | None = None
        self._prepared = False

    def __repr__(self) -> str:  # Ray uses it as the log prefix of this actor
        return f"IdentityWorker({self.placement.worker}, {self.placement.label})"

    def ready(self) -> Placement:
        """Load the networks (once) and report where this worker runs."""
        self._load()
        return self.placement

    def prepare(self) -> None:
        """Load, then compute or read the cached pretrained-generator statistics (once per process)."""
        self._load().prepare(self.job.fid_cache_dir)
        self._prepared = True

    def process(self, item: WorkItem) -> ResultRow:
        """Unlearn one identity and measure it; never raises an `Exception`, returns a failed row."""
        started = time.monotonic()
        log.info("%s: start %s", self.placement.worker, escape(item.identity_id))
        try:
            if not self._prepared:
                self.prepare()
            out_dir = attempt_dir(self.job.run_dir, item.identity_id)
            outcome = self._load().run(item, out_dir)
            row = self._ok_row(item, outcome, time.monotonic() - started, out_dir)
        except Exception as exc:  # the one broad catch: any per-item failure becomes a row
            log.exception("%s: %s failed", self.placement.worker, escape(item.identity_id))
            return failed_row(item, describe_exception(exc), time.monotonic() - started,
                              placement=self.placement, job_key=self.job_key)
        log.info("%s: done %s in %.1f s", self.placement.worker, escape(item.identity_id), row.seconds)
        return row

    def _load(self) -> PipelineLike:
        if self._pipeline is None:
            self._pipeline = self._factory(self.job, self.placement.device)
        return self._pipeline

    def _ok_row(self, item: WorkItem, outcome: Outcome, seconds: float, out_dir: Path) -> ResultRow:
        unknown = set(outcome.metrics) - set(METRIC_COLUMNS)
        if unknown:
            raise ValueError(
                f"pipeline returned unknown metrics {sorted(unknown)}; expected a subset of {METRIC_COLUMNS}"
            )
        run_dir = self.job.run_dir
        paths = {name: relative_to_run(run_dir, p) for name, p in outcome.artifacts.items()}
        staged = relative_to_run(run_dir, out_dir)
        outside = sorted(p for p in paths.values() if not p.startswith(staged + "/"))
        if outside:  # only the attempt's own folder is promoted with the row
            raise ValueError(f"pipeline wrote artifacts {outside} outside its attempt folder {staged}")
        return ResultRow(
            **_item_fields(item), status="ok", **{m: outcome.metrics.get(m) for m in METRIC_COLUMNS},
            loss_first=outcome.loss_first, loss_last=outcome.loss_last, loss_min=outcome.loss_min,
            iterations=outcome.iterations, id_views_unaligned=outcome.id_views_unaligned,
            seconds=seconds, worker=self.placement.worker,
            node=self.placement.node, device=self.placement.label, stand_in=outcome.stand_in,
            job_key=self.job_key, code_version=__version__,
            artifact_weights=paths.get("weights"), artifact_grid=paths.get("grid"), finished_at=utc_now(),
        )


def failed_row(item: WorkItem, error: str, seconds: float, *, placement: Placement, job_key: str) -> ResultRow:
    """A `failed` row for `item`; built by the worker (exception) or the driver (worker death)."""
    return ResultRow(
        **_item_fields(item), status="failed", error=error, seconds=seconds,
        worker=placement.worker, node=placement.node, device=placement.label,
        job_key=job_key, code_version=__version__, finished_at=utc_now(),
    )


def _item_fields(item: WorkItem) -> dict[str, object]:
    return {"identity_id": item.identity_id, "scenario": item.scenario, "backend": item.backend,
            "variant": item.variant, "seed": item.seed, "source": item.source, "run_key": item.run_key}
