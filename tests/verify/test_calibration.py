"""The FAR threshold and the collateral fit, against values worked out by hand (golden values)."""

from __future__ import annotations

import math

import pytest
import torch

from guide_ray.verify.calibration import far_threshold, impostor_scores
from guide_ray.verify.collateral import collateral, fit_slope, mean_pairwise_cosine

ANGLES = (0.0, 0.1, 0.3, 0.6, 1.0)   # unit vectors on a circle: pair cosines are cos(angle gaps)


def _circle(angles: tuple[float, ...]) -> torch.Tensor:
    t = torch.tensor(angles, dtype=torch.float64)
    return torch.stack([t.cos(), t.sin()], dim=1)                      # [N, 2]


def test_impostor_scores_are_the_pair_cosines() -> None:
    scores = sorted(impostor_scores(_circle(ANGLES)).tolist(), reverse=True)
    gaps = sorted([0.1, 0.3, 0.6, 1.0, 0.2, 0.5, 0.9, 0.3, 0.7, 0.4])
    assert scores == pytest.approx([math.cos(g) for g in gaps], abs=1e-12)


def test_far_threshold_golden() -> None:
    emb = _circle(ANGLES)                          # 10 pairs; the closest is 0.1 apart, then 0.2, then 0.3 twice
    assert far_threshold(emb, 0.1) == pytest.approx(math.cos(0.2), abs=1e-12)   # 1 pair may score above
    assert far_threshold(emb, 0.2) == pytest.approx(math.cos(0.3), abs=1e-12)   # 2 pairs may
    above = (impostor_scores(emb) > far_threshold(emb, 0.1)).sum()
    assert int(above) == 1


def test_far_threshold_averages_same_view_cosines() -> None:
    first = _circle(ANGLES)
    second = _circle((0.0,) * len(ANGLES))         # the second view never tells the identities apart
    emb = torch.stack([first, second], dim=1)      # [N, 2 views, 2]
    assert far_threshold(emb, 0.1) == pytest.approx((math.cos(0.2) + 1) / 2, abs=1e-12)


def test_far_threshold_gives_strangers_their_best_pose() -> None:
    """The worst case includes the pose sweep's best pose; a pair of strangers gets the same search."""
    views = _circle(ANGLES)                                    # view-mean scores cos(gap)
    closer = _circle(tuple(a / 2 for a in ANGLES))             # a pose where everyone looks closer: cos(gap / 2)
    farther = _circle(tuple(2 * a for a in ANGLES))            # and one where they look farther apart
    poses = torch.stack([farther, closer], dim=1)              # [N, 2 poses, 2]
    assert far_threshold(views, 0.1, poses) == pytest.approx(math.cos(0.1), abs=1e-12)    # gaps 0.05, 0.1, ...
    assert far_threshold(views, 0.1, farther[:, None]) == pytest.approx(math.cos(0.2), abs=1e-12)  # the mean wins
    with pytest.raises(ValueError, match="pose_embeddings must be"):
        far_threshold(views, 0.1, poses[:3])


def test_far_threshold_refuses_too_few_pairs() -> None:
    with pytest.raises(ValueError, match="cannot resolve FAR 0.05; need at least 20"):
        far_threshold(_circle(ANGLES), 0.05)


def test_fit_slope_golden() -> None:
    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert fit_slope(x, 2 * x + 1) == pytest.approx(2.0)
    assert fit_slope(x, torch.tensor([1.0, 2.0, 2.0, 4.0])) == pytest.approx(0.9)   # 4.5 / 5
    assert fit_slope(torch.ones(3), torch.tensor([0.0, 1.0, 5.0])) == 0.0
    with pytest.raises(ValueError):
        fit_slope(torch.ones(1), torch.ones(1))


def test_collateral_figures_golden() -> None:
    before = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    after = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    w_u = torch.zeros(1, 2, 4)
    probes = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1).expand(3, 2, 4)   # W+ distances 2, 4, 6 per row
    got = collateral(before, after, torch.tensor([1.0, 0.0]), probes, w_u)
    assert got.probe_drift.tolist() == pytest.approx([0.0, 0.2, 0.2])
    assert got.probe_dist_emb.tolist() == pytest.approx([0.0, 1.0, 0.4])
    assert got.probe_dist_w.tolist() == pytest.approx([2.0, 4.0, 6.0])
    assert got.drift_mean == pytest.approx(0.4 / 3)
    assert got.slope_emb == pytest.approx(7 / 38)
    assert got.slope_w == pytest.approx(0.05)
    assert got.diversity_ratio == pytest.approx(1.0)            # the same pair cosines, permuted
    assert mean_pairwise_cosine(before) == pytest.approx(1.4 / 3)


def test_collapse_lowers_the_diversity_ratio() -> None:
    before = torch.eye(3)
    after = torch.nn.functional.normalize(torch.ones(3, 3) + 0.1 * torch.eye(3), dim=1)
    got = collateral(before, after, before[0], torch.zeros(3, 1, 2), torch.ones(1, 1, 2))
    assert got.diversity_ratio < 0.05
