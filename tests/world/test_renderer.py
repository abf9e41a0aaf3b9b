"""The world's renderer: deterministic, pinned, the same person across yaws, different people apart."""

from __future__ import annotations

import torch

from guide_ray.world.nuisance import NUISANCE, cameras, canonical_nuisance, sample_nuisance
from guide_ray.world.population import sample_identities
from guide_ray.world.renderer import render


def _ids(n: int, seed: int = 1, domain: str = "in_domain") -> torch.Tensor:
    return sample_identities(n, torch.Generator().manual_seed(seed), domain)


def _render(ids: torch.Tensor, yaw: float, resolution: int = 32, nuisance: torch.Tensor | None = None) -> torch.Tensor:
    n = ids.shape[0]
    nuisance = canonical_nuisance(n) if nuisance is None else nuisance
    return render(ids, cameras(torch.full((n,), yaw)), nuisance, resolution)


def test_render_is_deterministic_batched_and_in_range() -> None:
    ids = _ids(3)
    a, b = _render(ids, 0.2), _render(ids, 0.2)
    assert a.shape == (3, 3, 32, 32)
    assert torch.equal(a, b)
    assert torch.allclose(_render(ids[1:2], 0.2), a[1:2], atol=1e-6)  # batch-independent
    assert a.min() >= -1 and a.max() <= 1


def test_golden_slice() -> None:
    image = _render(_ids(8), 0.0)[0, :, 16, 12:16]
    expected = torch.tensor([[0.662551, 0.660681, 0.643957, 0.727404],
                             [0.334887, 0.333385, 0.319957, 0.386958],
                             [0.123344, 0.122081, 0.110781, 0.167164]])
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_opposite_yaws_are_mirror_images_under_frontal_light() -> None:
    """The camera convention and the head are left-right symmetric: yaw θ is the mirror of -θ."""
    ids = _ids(2)
    light = canonical_nuisance(2)
    light[:, NUISANCE.index("light_azimuth")] = 0.0
    left, right = _render(ids, 0.3, nuisance=light), _render(ids, -0.3, nuisance=light)
    assert (left - right).abs().max() > 0.1  # the views do differ
    # float rounding flips a few supersamples on region edges (measured max 7e-4)
    torch.testing.assert_close(left, right.flip(-1), atol=2e-3, rtol=0)


def _colour_histogram(images: torch.Tensor) -> torch.Tensor:
    """Normalised 4×4×4 colour histogram of each image [B, 64]: a yaw-insensitive appearance feature."""
    q = ((images + 1) / 2 * 3.999).long().clamp(0, 3)
    bins = q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]
    hist = torch.stack([torch.bincount(b.flatten(), minlength=64) for b in bins]).float()
    return hist / hist.sum(1, keepdim=True)


def test_same_identity_across_yaws_closer_than_other_identities() -> None:
    ids = _ids(12, seed=3)
    frontal = _colour_histogram(_render(ids, 0.0))
    turned = _colour_histogram(_render(ids, 0.2618))  # GUIDE's pi/12
    same = (frontal - turned).abs().sum(1)
    other = (frontal - turned.roll(1, 0)).abs().sum(1)
    assert same.mean() < 0.5 * other.mean()
    assert (same < other).float().mean() >= 0.9


def test_nuisance_changes_the_image_not_the_identity_colours() -> None:
    ids = _ids(4, seed=5)
    varied = sample_nuisance(4, torch.Generator().manual_seed(0))
    a, b = _render(ids, 0.0), _render(ids, 0.0, nuisance=varied)
    assert (a - b).abs().mean() > 0.02
    ha, hb = _colour_histogram(a), _colour_histogram(b)
    assert (ha - hb).abs().sum(1).mean() < (ha - ha.roll(1, 0)).abs().sum(1).mean() * 2


def test_bad_shapes_name_what_was_expected() -> None:
    ids = _ids(2)
    try:
        render(ids, cameras(torch.zeros(3)), canonical_nuisance(2))
    except ValueError as exc:
        assert "cameras [2, 25]" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
