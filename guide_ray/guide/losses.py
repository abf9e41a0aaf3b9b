"""GUIDE's three loss terms, computed on one batched forward of each generator.

Per step the official loop renders batch-1 images 5 times with G_u and 5 times with G_s, and
the tri-planes 3 more times each. Here G_u renders all 1 + N_a + N_g latents in one forward and
G_s all targets in one no-grad forward; the plane MSE uses the planes of that same forward.
The sum of per-sample terms equals the official objective (tests/guide/test_batched_loss.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from guide_ray.config.guide import GuideConfig, LossWeights
from guide_ray.guide.fast import target_context
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.sampling import StepLatents
from guide_ray.models.nets.base import LossNets, identity_loss


@dataclass(frozen=True)
class LossParts:
    """Detached per-step values for logging: the three terms and their total."""

    total: float
    local: float
    adj: float
    global_: float


def _weighted(weights: LossWeights, mse: Tensor, lpips: Tensor, id_loss: Tensor) -> Tensor:
    """λ_L2 · MSE + λ_per · LPIPS + λ_id · ID per sample → [n]."""
    return weights.lambda_l2 * mse + weights.lambda_per * lpips + weights.lambda_id * id_loss


def guide_losses(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, latents: StepLatents, c: Tensor,
                 cfg: GuideConfig, nets: LossNets, rng: torch.Generator) -> tuple[Tensor, LossParts]:
    """Total loss (with grad into G_u) and its parts for one step; c: the step's camera [1, 25].

    Local and adjacency terms: MSE on G_u.l2_output (EG3D: raw planes; 2D: images) + LPIPS + ID
    loss; global term: LPIPS only.
    Adjacency and global per-sample terms are summed, as in the official loop.
    """
    b = latents.w_src.shape[0]
    c_b = c.expand(b, -1)
    out_u = G_u.synthesis(latents.w_src, c_b, noise_mode=cfg.noise_mode, generator=rng)
    with target_context(cfg.speed):
        out_s = G_s.synthesis(latents.w_tgt, c_b, noise_mode=cfg.noise_mode, generator=rng)
    img_u, img_s = out_u["image"], out_s["image"]             # [B, 3, R, R]
    lpips = nets.perceptual(img_u, img_s)                      # [B]
    n_pair = latents.n_local + latents.n_adj                   # rows with a w_u ↔ w_t pair
    zero = img_u.new_zeros(())
    local = adj = zero
    if n_pair:
        l2_u, l2_s = out_u[G_u.l2_output][:n_pair], out_s[G_s.l2_output][:n_pair]  # planes [n, 96, P, P] / images
        mse = (l2_u - l2_s).square().flatten(1).mean(1)                                     # [n]
        id_loss = identity_loss(nets.identity, img_u[:n_pair], img_s[:n_pair])             # [n]
        per_pair = [(cfg.local_weights, slice(0, latents.n_local)), (cfg.adj_weights, slice(latents.n_local, n_pair))]
        local, adj = (_weighted(w, mse[rows], lpips[rows], id_loss[rows]).sum() for w, rows in per_pair)
    glob_ = lpips[n_pair:].sum() if latents.n_global else zero
    total = local + cfg.lambda_adj * adj + cfg.lambda_global * glob_
    values = torch.stack([total, local, adj, glob_]).detach().tolist()   # one device sync per step
    return total, LossParts(*values)
