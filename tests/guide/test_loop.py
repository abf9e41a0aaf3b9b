"""The unlearning loop: what trains, what must not change, determinism, and that it unlearns."""

from __future__ import annotations

import copy

import pytest
import torch

from loop_probe import two_steps

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.loop import unlearn
from guide_ray.backends.eg3d import yaw_sweep
from guide_ray.metrics.identity import id_similarity
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.presets import build_generator
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual


@pytest.fixture(scope="module")
def nets():
    return LossNets(StandInPerceptual(), StandInIdentity())


def _setup(seed: int = 7):
    G_s = build_generator("tiny")
    rng = torch.Generator().manual_seed(seed)
    w_u = G_s.mapping(torch.randn(1, G_s.z_dim, generator=rng), frontal_camera(1))
    return G_s, copy.deepcopy(G_s), w_u, rng


def test_only_backbone_synthesis_trains(nets):
    G_s, G_u, w_u, rng = _setup()
    run = two_steps(G_s, G_u, w_u, rng, nets)
    synthesis = {f"backbone.synthesis.{n}" for n, _ in G_u.backbone.synthesis.named_parameters()}
    assert run.trainable == synthesis and len(synthesis) > 50
    assert run.changed and run.changed <= synthesis              # buffers (noise_const, w_avg...) untouched
    assert len(run.changed) > len(synthesis) // 2
    assert run.untouched(k for k in run.after if not k.startswith("backbone.synthesis."))   # mapping, SR, decoder
    assert run.source_unchanged                                  # G_s frozen


def test_same_seed_same_result(nets):
    runs = []
    for _ in range(2):
        G_s, G_u, w_u, rng = _setup(seed=11)
        result = unlearn(G_u, G_s, w_u, GuideConfig(iterations=2), nets, rng=rng)
        runs.append((result, G_u.state_dict()))
    (r1, sd1), (r2, sd2) = runs
    assert [p.total for p in r1.losses] == [p.total for p in r2.losses]
    assert all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    G_s, G_u, w_u, rng = _setup(seed=12)
    r3 = unlearn(G_u, G_s, w_u, GuideConfig(iterations=2), nets, rng=rng)
    assert [p.total for p in r3.losses] != [p.total for p in r1.losses]


def test_on_step_can_stop_early(nets):
    G_s, G_u, w_u, rng = _setup()
    result = unlearn(G_u, G_s, w_u, GuideConfig(iterations=50), nets, rng=rng, on_step=lambda s, p: s == 1)
    assert result.steps == 2 and len(result.losses) == 2


def test_nan_loss_is_reported_with_its_step(nets):
    G_s, G_u, w_u, rng = _setup()
    with pytest.raises(FloatingPointError, match="at step 0"):
        unlearn(G_u, G_s, w_u * float("nan"), GuideConfig(iterations=3), nets, rng=rng)


def test_loss_falls_and_identity_drops(nets):
    """A short run (30 steps, lr 1e-3 to make it short) on the tiny world: the local loss falls and
    the unlearned latent's identity moves away more than unrelated faces do."""
    cfg = GuideConfig(iterations=30, lr=1e-3)
    G_s, G_u, w_u, rng = _setup()
    result = unlearn(G_u, G_s, w_u, cfg, nets, rng=rng)
    local = [p.local for p in result.losses]
    assert sum(local[-5:]) / 5 < 0.9 * sum(local[:5]) / 5
    id_u = id_similarity(G_s, G_u, w_u, nets.identity, yaw_sweep(cfg.camera, 3))
    others = G_s.mapping(torch.randn(4, G_s.z_dim, generator=torch.Generator().manual_seed(99)), frontal_camera(4))
    id_others = [id_similarity(G_s, G_u, w[None], nets.identity, yaw_sweep(cfg.camera, 3)) for w in others]
    assert id_u < 0.99
    assert id_u < min(id_others)
