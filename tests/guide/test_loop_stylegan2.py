"""GUIDE on the 2D backend: the unchanged loop unlearns on stylegan2-tiny through UnlearnableGenerator."""

from __future__ import annotations

import copy

import pytest
import torch

from loop_probe import two_steps

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.loop import unlearn
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.presets import build_generator as build_eg3d
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual
from guide_ray.models.stylegan2.unlearnable import GuideStyleGAN2, build_unlearnable


@pytest.fixture(scope="module")
def nets():
    return LossNets(StandInPerceptual(), StandInIdentity())


@pytest.fixture(scope="module")
def source() -> GuideStyleGAN2:
    return build_unlearnable("stylegan2-tiny")


def _setup(source: GuideStyleGAN2, seed: int = 7):
    G_s = copy.deepcopy(source)
    rng = torch.Generator().manual_seed(seed)
    w_u = G_s.mapping(torch.randn(1, G_s.z_dim, generator=rng))
    return G_s, copy.deepcopy(G_s), w_u, rng


def _render(G: GuideStyleGAN2, ws: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return G.synthesis(ws, noise_mode="const")["image"]


def test_both_backends_satisfy_the_protocol(source: GuideStyleGAN2) -> None:
    assert isinstance(source, UnlearnableGenerator) and isinstance(build_eg3d("tiny"), UnlearnableGenerator)
    assert (source.l2_output, build_eg3d("tiny").l2_output) == ("image", "planes")
    synthesis = {id(p) for p in source.synthesis_parameters()}
    style = {id(p) for p in source.decoder.style.parameters()}
    assert synthesis.isdisjoint(style) and synthesis | style == {id(p) for p in source.parameters()}
    assert source.w_avg.shape == (source.n_latent, source.z_dim) == (10, 64)
    keys = list(source.state_dict())                               # pSp's `decoder.*` names, plus latent_avg
    assert keys == ["latent_avg"] + [f"decoder.{k}" for k in source.decoder.state_dict()]


def test_mapping_is_unconditioned_and_cameras_are_ignored(source: GuideStyleGAN2) -> None:
    z = torch.randn(2, source.z_dim, generator=torch.Generator().manual_seed(0))
    c1, c2 = frontal_camera(2), torch.randn(2, 25)
    ws = source.mapping(z, c1)
    assert ws.shape == (2, 10, 64) and torch.equal(ws, source.mapping(z, c2))
    assert torch.equal(ws, source.decoder.style(z)[:, None].expand(-1, 10, -1))
    with torch.no_grad():
        assert torch.equal(source.synthesis(ws, c1, noise_mode="const")["image"],
                           source.synthesis(ws, c2, noise_mode="const")["image"])
        none = source.synthesis(ws, noise_mode="none")["image"]
        r1, r2 = (source.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(3))["image"]
                  for _ in range(2))
    assert none.shape == (2, 3, 64, 64) and torch.equal(r1, r2)
    with pytest.raises(ValueError, match="noise_mode"):
        source.synthesis(ws, noise_mode="fixed")


def test_only_the_synthesis_convolutions_train(source: GuideStyleGAN2, nets) -> None:
    G_s, G_u, w_u, rng = _setup(source)
    run = two_steps(G_s, G_u, w_u, rng, nets)
    trainable = {n for n, _ in G_u.named_parameters() if not n.startswith("decoder.style.")}
    assert run.trainable == trainable
    assert len(trainable) == 1 + 5 + 4 + 8 * 5 + 4 * 4          # input, conv1, to_rgb1, convs, to_rgbs
    assert run.changed and run.changed <= trainable
    frozen = [k for k in run.after if k not in trainable]          # mapping, latent_avg, noises, kernels
    assert any(k.startswith("decoder.style.") for k in frozen) and "latent_avg" in frozen
    assert run.untouched(frozen)
    assert run.source_unchanged                                  # G_s untouched


def test_same_seed_same_result(source: GuideStyleGAN2, nets) -> None:
    runs = []
    for seed in (11, 11, 12):
        G_s, G_u, w_u, rng = _setup(source, seed=seed)
        result = unlearn(G_u, G_s, w_u, GuideConfig(iterations=2, lr=1e-3), nets, rng=rng)
        runs.append(([p.total for p in result.losses], G_u.state_dict()))
    (l1, sd1), (l2, sd2), (l3, _) = runs
    assert l1 == l2 and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert l1 != l3


def test_unlearning_moves_the_identity_towards_the_target(source: GuideStyleGAN2, nets) -> None:
    """15 steps (lr 1e-3 to keep it short): the local loss falls, G_u(w_u) approaches G_s(w_t),
    and its stand-in identity moves away from G_s(w_u) more than unrelated latents' do."""
    G_s, G_u, w_u, rng = _setup(source)
    result = unlearn(G_u, G_s, w_u, GuideConfig(iterations=15, lr=1e-3), nets, rng=rng)
    local = [p.local for p in result.losses]
    assert sum(local[-3:]) / 3 < 0.7 * sum(local[:3]) / 3
    target, original = _render(G_s, result.w_t), _render(G_s, w_u)
    unlearned = _render(G_u, w_u)
    assert (unlearned - target).square().mean() < 0.5 * (original - target).square().mean()
    embed = nets.identity
    id_u = float((embed(unlearned) * embed(original)).sum())
    others = G_s.mapping(torch.randn(4, G_s.z_dim, generator=torch.Generator().manual_seed(99)))
    id_others = (embed(_render(G_u, others)) * embed(_render(G_s, others))).sum(1)
    assert id_u < 0.99 and id_u < float(id_others.min())
