"""Sizing the worker pool from the cluster's resources (no cluster needed)."""

from __future__ import annotations

import pytest

from guide_ray.config.job import JobSpec
from guide_ray.engine.cluster import Capacity, actor_count
from guide_ray.errors import ConfigError


def _job(**changes: object) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "manifest": "m", "output_dir": "o", **changes})


@pytest.mark.parametrize(
    ("resources", "cap", "n_items", "expected"),
    [
        ({"gpus_per_actor": 1, "cpus_per_actor": 4}, Capacity(cpus=32, gpus=8), 100, 8),     # one per GPU
        ({"gpus_per_actor": 0.5, "cpus_per_actor": 4}, Capacity(cpus=32, gpus=8), 100, 8),   # CPUs bind
        ({"gpus_per_actor": 0.5, "cpus_per_actor": 2}, Capacity(cpus=32, gpus=8), 100, 16),  # two per GPU
        ({"gpus_per_actor": 1, "cpus_per_actor": 1}, Capacity(cpus=32, gpus=8), 3, 3),       # capped by items
        ({"gpus_per_actor": 0, "cpus_per_actor": 1}, Capacity(cpus=2, gpus=0), 10, 2),       # CPU only
        ({"gpus_per_actor": 1 / 3, "cpus_per_actor": 1}, Capacity(cpus=8, gpus=1), 10, 3),   # float shares
    ],
)
def test_actor_count_fits_the_cluster(resources: dict, cap: Capacity, n_items: int, expected: int) -> None:
    assert actor_count(_job(resources=resources), n_items, cap) == expected


def test_explicit_num_actors_is_trusted_for_autoscaling() -> None:
    assert actor_count(_job(num_actors=4, resources={"gpus_per_actor": 1}), 10, Capacity(cpus=0, gpus=0)) == 4


def test_no_gpu_for_a_gpu_job_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no worker fits.*--num-gpus"):
        actor_count(_job(resources={"gpus_per_actor": 1}), 5, Capacity(cpus=2, gpus=0))


def test_pick_device() -> None:
    import torch

    from guide_ray.engine.actors import pick_device

    assert pick_device("cpu", ("0",)) == "cpu"
    assert pick_device("auto", ()) == "cpu"
    assert pick_device("cuda", ()) == "cuda:0"  # passed through: the pipeline then fails loudly in ready()
    assert pick_device("auto", ("0",)) == ("cuda:0" if torch.cuda.is_available() else "cpu")  # logical GPU
