"""The world's quality figures on known inputs."""

from __future__ import annotations

import torch

from guide_ray.world.evaluate import generator_fidelity, tar_at_far, verification_scores
from guide_ray.world.generator import build_world_generator
from guide_ray.world.idnet import WorldIdentityNet
from guide_ray.world.population import sample_identities


def test_tar_at_far_on_known_scores() -> None:
    different = torch.linspace(0, 0.99, 100)  # 1% of them above 0.9801
    same = torch.tensor([0.5, 0.97, 0.985, 0.99, 1.0])
    tar, threshold = tar_at_far(same, different, far=1e-2)
    assert abs(threshold - 0.9801) < 1e-6
    assert tar == 3 / 5


def test_verification_scores_pair_up_photos() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = WorldIdentityNet()
    ids = sample_identities(5, torch.Generator().manual_seed(0))
    same, different = verification_scores(net, ids, torch.Generator().manual_seed(1), resolution=32)
    assert same.shape == (5,) and different.shape == (20,)
    assert bool((same.abs() <= 1 + 1e-5).all())


def test_generator_fidelity_shape_and_range() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = WorldIdentityNet()
    G = build_world_generator(1)
    sims = generator_fidelity(G, net, torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)),
                              torch.tensor([0.0, 0.26]), resolution=32)
    assert sims.shape == (2, 2)
    assert bool((sims.abs() <= 1 + 1e-5).all())
