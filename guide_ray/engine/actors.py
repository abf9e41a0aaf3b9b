"""The one `ray.remote` in the package: IdentityWorker (and VerifyWorker) as a long-lived, restartable GPU actor.

Each actor reserves `resources.gpus_per_actor` GPUs (a fraction lets several identities share
one device) and `cpus_per_actor` CPUs. Ray restarts a crashed actor up to MAX_RESTARTS times
(re-running `__init__`), but never retries a task (`max_task_retries=0`): the driver decides
whether an interrupted identity is retried, so poison items are counted and capped.
Each actor also logs to RUN/logs/<actor name>.log, beside Ray's own worker logs.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import ray
from ray.actor import ActorHandle

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.verify import VerifySpec
from guide_ray.engine.verify_worker import VerifierFactory, VerifyItem, VerifyWorker
from guide_ray.engine.worker import IdentityWorker, PipelineFactory, Placement
from guide_ray.utils.device import pick_device

MAX_RESTARTS = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class ActorSlot:
    """A worker actor as the driver tracks it; `placement` is filled in by its first `ready()`."""

    name: str
    handle: ActorHandle
    placement: Placement | None = None

    def describe(self) -> Placement:
        """The last known placement, or a placeholder when the actor never answered."""
        return self.placement or Placement(worker=self.name, node="unknown", device="unknown")


class ActorWorker(IdentityWorker):
    """IdentityWorker inside a Ray actor: finds its node, GPUs and device, and logs to a file."""

    def __init__(self, job: JobSpec, job_key: str, name: str, pipeline_factory: PipelineFactory | None) -> None:
        super().__init__(job, job_key, _placement(job, name), pipeline_factory)


class ActorVerifyWorker(VerifyWorker):
    """VerifyWorker inside a Ray actor (same placement and logging as ActorWorker)."""

    def __init__(self, job: JobSpec, spec: VerifySpec, name: str, factory: VerifierFactory | None) -> None:
        super().__init__(job, spec, _placement(job, name), factory)


def _placement(job: JobSpec, name: str) -> Placement:
    ctx = ray.get_runtime_context()
    gpu_ids = tuple(str(g) for g in ctx.get_accelerator_ids()["GPU"])
    _log_to_file(job, name)
    return Placement(worker=name, node=ctx.get_node_id(), device=pick_device(job.device, gpu_ids), gpu_ids=gpu_ids)


def _log_to_file(job: JobSpec, name: str) -> None:
    logs = job.run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / f"{name}.log")
    handler.setFormatter(logging.Formatter(f"{LOG_FORMAT} [{socket.gethostname()}]"))
    package_log = logging.getLogger("guide_ray")
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)


def start_worker(job: JobSpec, job_key: str, name: str, pipeline_factory: PipelineFactory | None = None) -> ActorSlot:
    """Create one named worker actor (creation is asynchronous; call `submit_ready` to wait)."""
    return ActorSlot(name=name, handle=_actor_class(ActorWorker, job, name).remote(job, job_key, name, pipeline_factory))


def start_verify_worker(job: JobSpec, spec: VerifySpec, name: str, factory: VerifierFactory | None = None) -> ActorSlot:
    """Create one named verify actor; the driver uses it through the same submit_* calls."""
    return ActorSlot(name=name, handle=_actor_class(ActorVerifyWorker, job, name).remote(job, spec, name, factory))


def _actor_class(cls: type, job: JobSpec, name: str):  # noqa: ANN202 (a Ray actor class)
    return ray.remote(cls).options(
        name=name,
        num_gpus=job.resources.gpus_per_actor,
        num_cpus=job.resources.cpus_per_actor,
        max_restarts=MAX_RESTARTS,
        max_task_retries=0,
    )


def submit_ready(slot: ActorSlot) -> ray.ObjectRef:
    """Ask the actor to load its networks; resolves to its Placement."""
    return slot.handle.ready.remote()


def submit_prepare(slot: ActorSlot) -> ray.ObjectRef:
    """Ask the actor to compute or load the cached pretrained statistics."""
    return slot.handle.prepare.remote()


def submit_process(slot: ActorSlot, item: WorkItem | VerifyItem) -> ray.ObjectRef:
    """Send one identity; resolves to its ResultRow / VerifyRow (or raises RayActorError if the actor dies)."""
    return slot.handle.process.remote(item)


def stop_worker(slot: ActorSlot) -> None:
    """Kill the actor for good (no restart); in-flight work is dropped, uncommitted."""
    ray.kill(slot.handle, no_restart=True)


def interrupt_worker(slot: ActorSlot) -> None:
    """Kill the actor's process but let Ray restart it (used for per-item timeouts)."""
    ray.kill(slot.handle, no_restart=False)
