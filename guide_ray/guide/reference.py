"""GUIDE's step in the official order, the baseline every speed claim is measured against.

`KHU-AGI/GUIDE unlearn.py:245-317`, per step and at batch 1: for the local pair and each
adjacency pair, the tri-planes of G_u and G_s from a separate backbone pass (`get_planes`), then
a full render of each (`synthesis`, new noise), LPIPS and ID; for each global latent a render of
each generator and LPIPS. G_s runs as the official `g_source`: in train mode, outside no_grad
(its parameters are frozen, so no graph is kept). fp32, no chunks, one backward over the summed
loss (or one per term where that peak does not fit the host: reference_step). The latents and
camera come from the caller (guide.sampling), so both steps see the same ones; the random draws of
the renders come from `rng`, in this order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from guide_ray.config.guide import GuideConfig, LossWeights
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.sampling import StepLatents
from guide_ray.models.nets.base import LossNets, identity_loss

Backward = Literal["sum", "per_term"]


def _planes(G: UnlearnableGenerator, w: Tensor, c: Tensor, noise_mode: str, rng: torch.Generator) -> Tensor:
    """The L2 term's tensor from its own pass: EG3D's backbone planes (`get_planes`), else the output."""
    backbone = getattr(G, "backbone", None)
    if backbone is not None and G.l2_output == "planes":
        return backbone.synthesis(w, noise_mode=noise_mode, generator=rng)
    return G.synthesis(w, c, noise_mode=noise_mode, generator=rng)[G.l2_output]


def _pair(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, w_src: Tensor, w_tgt: Tensor, c: Tensor,
          weights: LossWeights, cfg: GuideConfig, nets: LossNets, rng: torch.Generator) -> Tensor:
    """One local or adjacency term: λ_L2 MSE(planes) + λ_per LPIPS + λ_id ID, in the official call order."""
    mode = cfg.noise_mode
    mse = F.mse_loss(_planes(G_u, w_src, c, mode, rng), _planes(G_s, w_tgt, c, mode, rng))
    img_u = G_u.synthesis(w_src, c, noise_mode=mode, generator=rng)["image"]
    img_t = G_s.synthesis(w_tgt, c, noise_mode=mode, generator=rng)["image"]
    return (weights.lambda_l2 * mse + weights.lambda_per * nets.perceptual(img_u, img_t).mean()
            + weights.lambda_id * identity_loss(nets.identity, img_u, img_t).mean())


def reference_terms(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, latents: StepLatents, c: Tensor,
                    cfg: GuideConfig, nets: LossNets, rng: torch.Generator) -> Iterator[Tensor]:
    """The step's weighted loss terms (graph into G_u) in the official order, one per local, adjacency and
    global latent, each rendered only when asked for; c: the step's camera [1, 25]."""
    was_training = G_s.training
    G_s.train()
    try:
        src, tgt = (w[:, None] for w in (latents.w_src, latents.w_tgt))    # [B, 1, L, C]: one latent per call
        if latents.n_local:
            yield _pair(G_u, G_s, src[0], tgt[0], c, cfg.local_weights, cfg, nets, rng)
        n_pair = latents.n_local + latents.n_adj
        for i in range(latents.n_local, n_pair):
            yield cfg.lambda_adj * _pair(G_u, G_s, src[i], tgt[i], c, cfg.adj_weights, cfg, nets, rng)
        for i in range(n_pair, n_pair + latents.n_global):
            img_u = G_u.synthesis(src[i], c, noise_mode=cfg.noise_mode, generator=rng)["image"]
            img_s = G_s.synthesis(tgt[i], c, noise_mode=cfg.noise_mode, generator=rng)["image"]
            yield cfg.lambda_global * nets.perceptual(img_u, img_s).mean()
    finally:
        G_s.train(was_training)


def reference_loss(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, latents: StepLatents, c: Tensor,
                   cfg: GuideConfig, nets: LossNets, rng: torch.Generator) -> Tensor:
    """The step's summed loss (graph into G_u), latent by latent; c: the step's camera [1, 25]."""
    return sum(reference_terms(G_u, G_s, latents, c, cfg, nets, rng), c.new_zeros(()))


def reference_step(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, latents: StepLatents, c: Tensor,
                   cfg: GuideConfig, nets: LossNets, rng: torch.Generator, backward: Backward = "sum") -> float:
    """Forward and backward of the official step; G_u's .grad holds its gradient. → the loss.

    backward "sum" is the official one backward over the summed loss (all five renders' graphs alive at
    once); "per_term" calls backward after each term instead: the same renders in the same order and the
    same gradient, with one term's graph alive at a time, for hosts where the official peak does not fit.
    """
    if backward == "sum":
        loss = reference_loss(G_u, G_s, latents, c, cfg, nets, rng)
        loss.backward()
        return loss.item()
    if backward != "per_term":
        raise ValueError(f"backward must be 'sum' or 'per_term', got {backward!r}")
    total = 0.0
    for term in reference_terms(G_u, G_s, latents, c, cfg, nets, rng):
        term.backward()
        total += term.item()
    return total
