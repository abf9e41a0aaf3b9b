"""The world's identity distributions and the fixed z ↦ identity map."""

from __future__ import annotations

import pytest
import torch

from guide_ray.world.population import (
    NUM_PARAMS, PARAM_INDEX, param_ranges, sample_identities, z_map_matrix, z_to_identity,
)


def test_sampling_is_seeded_and_inside_the_documented_ranges() -> None:
    for domain in ("in_domain", "ood"):
        a = sample_identities(500, torch.Generator().manual_seed(0), domain)
        b = sample_identities(500, torch.Generator().manual_seed(0), domain)
        assert torch.equal(a, b)
        lo, hi = param_ranges(domain)
        assert a.shape == (500, NUM_PARAMS)
        assert bool(((a >= lo) & (a <= hi)).all())


def test_ood_is_shifted_as_documented() -> None:
    """Tinted skin, dyed hair: disjoint ranges; wider heads and bigger eyes on average."""
    ind = sample_identities(2000, torch.Generator().manual_seed(1), "in_domain")
    ood = sample_identities(2000, torch.Generator().manual_seed(1), "ood")
    for name in ("skin_tint", "hair_red", "eye_r"):
        i = PARAM_INDEX[name]
        assert ood[:, i].min() > ind[:, i].max(), name
    for name in ("head_w", "jaw_w", "eye_sep", "nose_w"):
        i = PARAM_INDEX[name]
        assert ood[:, i].mean() > ind[:, i].mean() + 0.005, name


def test_unknown_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown domain 'ffhq'"):
        param_ranges("ffhq")


def test_z_map_is_fixed_orthonormal_and_pinned() -> None:
    q = z_map_matrix(64)
    assert q.shape == (NUM_PARAMS, 64)
    torch.testing.assert_close(q @ q.T, torch.eye(NUM_PARAMS), atol=1e-5, rtol=0)
    torch.testing.assert_close(q[:2, :4], torch.tensor([[-0.059277, 0.078164, 0.051077, -0.211467],
                                                        [-0.212425, 0.139142, -0.115113, -0.072986]]),
                               atol=1e-5, rtol=0)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z_to_identity(z)[:, :4], torch.tensor([[0.196977, 0.244718, 0.244221, 0.159515],
                                                                      [0.175356, 0.261778, 0.215104, 0.119384]]),
                               atol=1e-5, rtol=0)


def test_z_map_gives_the_in_domain_population() -> None:
    """z ~ N(0, I) lands uniformly in the in-domain ranges (mean at the middle, quartiles at 1/4, 3/4)."""
    z = torch.randn(20000, 64, generator=torch.Generator().manual_seed(2))
    lo, hi = param_ranges("in_domain")
    u = (z_to_identity(z) - lo) / (hi - lo)
    assert bool(((u >= 0) & (u <= 1)).all())
    torch.testing.assert_close(u.mean(0), torch.full((NUM_PARAMS,), 0.5), atol=0.02, rtol=0)
    torch.testing.assert_close(u.quantile(0.25, dim=0), torch.full((NUM_PARAMS,), 0.25), atol=0.02, rtol=0)
    assert z_to_identity(z[:1].clone()).equal(z_to_identity(z[:1]))


def test_z_map_needs_enough_latent_dimensions() -> None:
    with pytest.raises(ValueError, match="z_dim 8 <"):
        z_map_matrix(8)
