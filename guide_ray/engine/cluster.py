"""Start or join a Ray cluster, and size the worker pool from what the cluster offers.

Local by default (CPUs from the machine, GPUs detected or declared logically with --num-gpus,
no dashboard). An explicit address, or RAY_ADDRESS (set by `ray job submit` for its
entrypoint), joins an existing cluster instead. If Ray is already initialised (tests, a
notebook) the session is left to its owner.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ray

from guide_ray.config.job import JobSpec
from guide_ray.engine import leftovers
from guide_ray.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capacity:
    """Logical resources the cluster currently reports."""

    cpus: float
    gpus: float


@contextmanager
def ray_session(
    address: str | None = None, *, num_cpus: int | None = None, num_gpus: float | None = None,
    run_dir: Path | None = None,
) -> Iterator[None]:
    """A Ray connection for the duration of the block; shut down on exit only if this call started it.

    `num_cpus` / `num_gpus` apply to a new local cluster only (GPUs may be logical, for tests or to
    pack fractional actors); joining an existing cluster with them raises ConfigError. With
    `run_dir` (whose lock the caller holds), leftovers of the folder's earlier local cluster are
    ended first and the new local cluster is recorded there.
    """
    if ray.is_initialized():
        yield
        return
    joining = address is not None or "RAY_ADDRESS" in os.environ
    if joining and (num_cpus is not None or num_gpus is not None):
        raise ConfigError("--num-cpus/--num-gpus only apply to a new local cluster, not when joining one")
    if joining:
        ray.init(address=address, logging_config=ray.LoggingConfig(log_level="WARNING"))
    else:
        if run_dir is not None:
            leftovers.end_leftovers(run_dir)
        ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                 logging_config=ray.LoggingConfig(log_level="WARNING"))
        if run_dir is not None:
            leftovers.record(run_dir, ray.get_runtime_context().get_node_id())
    try:
        yield
    finally:
        ray.shutdown()
        if run_dir is not None and not joining:
            leftovers.forget(run_dir)


def capacity() -> Capacity:
    """The cluster's total CPUs and GPUs (logical), as Ray reports them now."""
    res = ray.cluster_resources()
    return Capacity(cpus=float(res.get("CPU", 0.0)), gpus=float(res.get("GPU", 0.0)))


def actor_count(job: JobSpec, n_items: int, cap: Capacity) -> int:
    """How many worker actors to start: job.num_actors if set, else as many as the cluster fits.

    An explicit num_actors is trusted (an autoscaling cluster grows to fit it); a derived count is
    capped by the number of items. Raises ConfigError when not even one actor fits.
    """
    if job.num_actors is not None:
        return min(job.num_actors, max(n_items, 1))
    res = job.resources
    fits = math.floor(cap.cpus / res.cpus_per_actor + 1e-9)
    if res.gpus_per_actor > 0:
        fits = min(fits, math.floor(cap.gpus / res.gpus_per_actor + 1e-9))
    if fits < 1:
        raise ConfigError(
            f"no worker fits: each actor needs {res.gpus_per_actor} GPU and {res.cpus_per_actor} CPU, the cluster "
            f"has {cap.gpus} GPU and {cap.cpus} CPU. Set resources.gpus_per_actor: 0 to run on CPUs, declare GPUs "
            "with --num-gpus, or set num_actors for an autoscaling cluster"
        )
    return min(fits, max(n_items, 1))
