"""A world trained for a few steps (seconds), in the layout `guide-ray world train` writes, so the
`world` backend's loading and wiring are tested without the full training; and the weights folder
of the fully trained world (a trained $GUIDE_RAY_WEIGHTS/world, else the shipped one), for the
quality tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from guide_ray.models.weights import resolve_weights_dir
from guide_ray.world.shipped import MANIFEST_FILE, SHIPPED_SHA256, WORLD_SUBDIR
from guide_ray.world.train import StageConfig, WorldTrainConfig, train_world


@pytest.fixture(scope="session")
def mini_world(tmp_path_factory) -> Path:
    """A weights folder whose world/ holds a few-step world (not a trained one: wiring only)."""
    weights = tmp_path_factory.mktemp("weights")
    cfg = WorldTrainConfig(num_identities=8, id_resolution=32, checkpoint_every=50,
                           id_loss=StageConfig(steps=2, batch=4, lr=2e-3, seed=11),
                           id_metric=StageConfig(steps=2, batch=4, lr=2e-3, seed=12), point_rays=64,
                           generator_3d=StageConfig(steps=2, batch=2, lr=1e-2, seed=14),
                           generator=StageConfig(steps=2, batch=2, lr=2e-3, seed=13))
    train_world(weights / WORLD_SUBDIR, cfg, progress=False)
    return weights


@pytest.fixture(scope="session")
def trained_world() -> Path:
    """The weights folder the world backend reads: $GUIDE_RAY_WEIGHTS (or ./weights) with a trained
    world/ in it, else (world/ absent there) the world shipped in the package."""
    weights = resolve_weights_dir()
    if not (weights / WORLD_SUBDIR / MANIFEST_FILE).is_file() and not SHIPPED_SHA256:
        pytest.skip(f"no trained world in {weights / WORLD_SUBDIR} and none shipped (train it: guide-ray world "
                    f"train --out {weights / WORLD_SUBDIR})")
    return weights
