"""Where the unlearned identity should go: GUIDE's UFO target, or the baseline w_avg."""

from __future__ import annotations

from torch import Tensor

from guide_ray.config.guide import GuideConfig


def ufo_target(w_u: Tensor, w_avg: Tensor, d: float) -> Tensor:
    """Un-identifying Face On latent: w_t = w_avg − d · w_id / ‖w_id‖_F with w_id = w_u − w_avg.

    w_u: [B, L, C] (W+); w_avg: [C] or anything broadcastable to w_u. One Frobenius norm per
    sample over all L × C entries (not per layer), as GUIDE's `norm(p=2)` on [1, 14, 512].
    """
    w_id = w_u - w_avg                                   # [B, L, C] identity direction in W+
    norm = w_id.flatten(1).norm(dim=1).view(-1, 1, 1)    # one norm over all of W+
    return w_avg - d * w_id / norm                       # [B, L, C], a distance d past the mean


def average_target(w_u: Tensor, w_avg: Tensor) -> Tensor:
    """The baseline target: the average face w_avg, broadcast to w_u's shape."""
    return w_avg.expand_as(w_u).clone()


def make_target(cfg: GuideConfig, w_u: Tensor, w_avg: Tensor) -> Tensor:
    if cfg.target == "average":
        return average_target(w_u, w_avg)
    return ufo_target(w_u, w_avg, cfg.d)
