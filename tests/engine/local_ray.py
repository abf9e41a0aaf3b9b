"""The local Ray cluster the engine's Ray test modules share: 2 CPUs, optional logical GPU, small store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import ray
from ray import cloudpickle


@contextmanager
def local_cluster(*by_value: ModuleType, num_gpus: float | None = 1) -> Iterator[None]:
    """A fresh local cluster for one test module; `by_value` test modules are pickled by value,
    since Ray's workers cannot import tests/."""
    ray.init(num_cpus=2, num_gpus=num_gpus, include_dashboard=False, object_store_memory=200 * 2**20,
             logging_config=ray.LoggingConfig(log_level="WARNING"))
    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)
        ray.shutdown()
