"""Collateral figures: how much other identities drifted, as a function of their distance from the
forgotten one, and whether the unlearned renders collapsed onto one template.

Why a slope and not only a mean: GUIDE's local and adjacency terms should hurt near neighbours of
w_u more than far-away identities (a negative slope of drift against distance); a flat, high
drift is the "everyone's face changed" failure. Pure functions here; suite.py renders the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


def fit_slope(x: Tensor, y: Tensor) -> float:
    """Least-squares slope of y on x (both [N], N >= 2); 0 when x does not vary."""
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need two [N >= 2] vectors, got {list(x.shape)} and {list(y.shape)}")
    x, y = x.double(), y.double()
    dx = x - x.mean()
    denom = float((dx * dx).sum())
    return 0.0 if denom == 0 else float((dx * (y - y.mean())).sum() / denom)


def mean_pairwise_cosine(embeddings: Tensor) -> float:
    """Mean cosine over distinct pairs of L2-normalised rows [N, D], N >= 2."""
    n = len(embeddings)
    sims = embeddings @ embeddings.T
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


@dataclass(frozen=True)
class Collateral:
    """The row's collateral figures (see VerifyRow for their column descriptions)."""

    drift_mean: float       # mean 1 - cos(f(G_s(w_i)), f(G_u(w_i))) over the probes
    slope_emb: float        # d drift / d (1 - cos to the forgotten identity)
    slope_w: float          # d drift / d ||w_i - w_u|| (W+, Frobenius / sqrt(L))
    diversity_ratio: float  # (1 - mean pair cos) of G_u's probe renders over G_s's; < 1 = collapse
    probe_drift: Tensor     # [N], for the plot
    probe_dist_emb: Tensor  # [N]
    probe_dist_w: Tensor    # [N]


def collateral(e_before: Tensor, e_after: Tensor, e_forgotten: Tensor, w_probes: Tensor, w_u: Tensor) -> Collateral:
    """Figures from embeddings of the probe renders before [N, D] and after [N, D] unlearning, the
    forgotten identity's embedding [D] (G_s's render) and the latents w_probes [N, L, C], w_u [1, L, C]."""
    drift = 1 - (e_before * e_after).sum(dim=1)                                   # [N]
    dist_emb = 1 - e_before @ e_forgotten                                         # [N]
    dist_w = (w_probes - w_u).flatten(1).norm(dim=1) / w_u.shape[1] ** 0.5        # [N]
    spread_before = 1 - mean_pairwise_cosine(e_before)
    spread_after = 1 - mean_pairwise_cosine(e_after)
    ratio = spread_after / spread_before if spread_before > 0 else float("nan")
    return Collateral(drift_mean=float(drift.mean()), slope_emb=fit_slope(dist_emb, drift),
                      slope_w=fit_slope(dist_w, drift), diversity_ratio=ratio,
                      probe_drift=drift, probe_dist_emb=dist_emb, probe_dist_w=dist_w)

