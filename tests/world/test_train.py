"""The world trainer: each stage runs from its seed, resumes bit-identically, skips finished stages,
and pins its files in a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from guide_ray.errors import ConfigError
from guide_ray.utils.files import file_sha256
from guide_ray.world.generator import build_world_generator
from guide_ray.world.idnet import WorldIdentityNet
from guide_ray.world.sample import sample_grid
from guide_ray.world.train import (
    FILES, MANIFEST_FILE, SHIPPED, STAGES, StageConfig, WorldTrainConfig, _Generator3DStage, _IdentityStage,
    train_world,
)


def _cfg(**overrides) -> WorldTrainConfig:
    small = dict(num_identities=8, id_resolution=32, checkpoint_every=1,
                 id_loss=StageConfig(steps=2, batch=4, lr=2e-3, seed=11),
                 id_metric=StageConfig(steps=2, batch=4, lr=2e-3, seed=12), point_rays=64,
                 generator_3d=StageConfig(steps=2, batch=2, lr=1e-2, seed=14),
                 generator=StageConfig(steps=3, batch=2, lr=2e-3, seed=13))
    return WorldTrainConfig(**{**small, **overrides})


def _states(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {s: torch.load(out / FILES[s], map_location="cpu", weights_only=True) for s in STAGES}


def test_identity_step_golden_loss() -> None:
    """CosFace loss of the first seeded batch (8 classes, s=30, m=0.35), measured once and pinned."""
    stage = _IdentityStage("id_loss", _cfg())
    assert stage.step(0) == pytest.approx(15.044641, abs=1e-4)


def test_generator_3d_step_golden_loss() -> None:
    """Occupancy + 10 × colour loss of the first seeded 3D-supervision batch, measured once and pinned."""
    stage = _Generator3DStage(_cfg())
    assert stage.step(0) == pytest.approx(GOLDEN_3D_LOSS, abs=1e-4)


GOLDEN_3D_LOSS = 2.538813


def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    cfg = _cfg()
    straight = train_world(tmp_path / "a", cfg, progress=False)
    assert {s: n for s, (n, _) in straight.items()} == {"id_loss": 2, "generator_3d": 2, "generator": 3,
                                                        "id_metric": 2}

    first = train_world(tmp_path / "b", cfg, budget=5, progress=False)  # stops one step into the generator
    assert {s: n for s, (n, _) in first.items()} == {"id_loss": 2, "generator_3d": 2, "generator": 1}
    assert not (tmp_path / "b" / FILES["generator"]).exists()
    ckpt = torch.load(tmp_path / "b" / "checkpoints" / "generator.pt", weights_only=True)
    assert ckpt["step"] == 1
    second = train_world(tmp_path / "b", cfg, progress=False)
    assert second["id_loss"] == (0, None) and second["generator"][0] == 2

    a, b = _states(tmp_path / "a"), _states(tmp_path / "b")
    for stage in STAGES:
        assert a[stage].keys() == b[stage].keys()
        for key in a[stage]:
            assert torch.equal(a[stage][key], b[stage][key]), (stage, key)
    # the generator really trained, and w_avg was set
    fresh = build_world_generator(14).state_dict()
    for stage in ("generator_3d", "generator"):
        assert not torch.equal(fresh["decoder.net.0.weight"], a[stage]["decoder.net.0.weight"])
    assert not torch.equal(a["generator_3d"]["decoder.net.0.weight"], a["generator"]["decoder.net.0.weight"])
    assert a["generator"]["backbone.mapping.w_avg"].abs().sum() > 0

    # finished stages are skipped and nothing is rewritten
    stamps = {s: (tmp_path / "a" / FILES[s]).stat().st_mtime_ns for s in STAGES}
    assert train_world(tmp_path / "a", cfg, progress=False) == {s: (0, None) for s in STAGES}
    assert stamps == {s: (tmp_path / "a" / FILES[s]).stat().st_mtime_ns for s in STAGES}

    # the manifest pins every shipped file (not the 3D stage's intermediate), and they load as plain state_dicts
    manifest = json.loads((tmp_path / "a" / MANIFEST_FILE).read_text())
    assert set(manifest) == {"world.json", *(FILES[s] for s in SHIPPED)}
    for name, digest in manifest.items():
        assert file_sha256(tmp_path / "a" / name) == digest
    WorldIdentityNet().load_state_dict(a["id_metric"])
    build_world_generator(0).load_state_dict(a["generator"])

    # the trained generator's rows interleave with the renderer's in the sample grid
    grid = sample_grid(tmp_path / "grid.png", 2, 0, "in_domain", 24, generator_file=tmp_path / "a" / FILES["generator"])
    assert Image.open(grid).size == (5 * 24, 4 * 24)


def test_a_checkpoint_from_another_config_is_refused(tmp_path: Path) -> None:
    train_world(tmp_path, _cfg(), budget=1, progress=False)
    other = _cfg(id_loss=StageConfig(steps=2, batch=4, lr=1e-3, seed=11))
    with pytest.raises(ConfigError, match="id_loss.pt was written with another training config"):
        train_world(tmp_path, other, budget=1, progress=False)
