"""Oracle for the batched loss: GUIDE's objective written as the official loop computes it.

One latent at a time, planes from a separate `backbone.synthesis` call (the official
`get_planes`), LPIPS/ID means over batch-1 calls, adjacency and global terms summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from guide_ray.models.nets.base import identity_loss


def _pair_loss(G_u, G_s, w_src, w_tgt, c, weights, nets, noise_mode):
    planes_u = G_u.backbone.synthesis(w_src, noise_mode=noise_mode)
    with torch.no_grad():
        planes_t = G_s.backbone.synthesis(w_tgt, noise_mode=noise_mode)
    img_u = G_u.synthesis(w_src, c, noise_mode=noise_mode)["image"]
    with torch.no_grad():
        img_t = G_s.synthesis(w_tgt, c, noise_mode=noise_mode)["image"]
    return (weights.lambda_l2 * F.mse_loss(planes_u, planes_t)
            + weights.lambda_per * nets.perceptual(img_u, img_t).mean()
            + weights.lambda_id * identity_loss(nets.identity, img_u, img_t).mean())


def reference_loss(G_u, G_s, w_u, w_t, deltas, w_globals, c, cfg, nets):
    """w_u, w_t: [1, L, C]; deltas: [N_a, L, C]; w_globals: [N_g, L, C]; c: [1, 25]."""
    loss = torch.zeros(())
    if cfg.loss_local:
        loss = loss + _pair_loss(G_u, G_s, w_u, w_t, c, cfg.local_weights, nets, cfg.noise_mode)
    if cfg.loss_adj:
        adj = sum(_pair_loss(G_u, G_s, w_u + d[None], w_t + d[None], c, cfg.adj_weights, nets, cfg.noise_mode)
                  for d in deltas)
        loss = loss + cfg.lambda_adj * adj
    if cfg.loss_global:
        glob_ = torch.zeros(())
        for w in w_globals:
            img_u = G_u.synthesis(w[None], c, noise_mode=cfg.noise_mode)["image"]
            with torch.no_grad():
                img_s = G_s.synthesis(w[None], c, noise_mode=cfg.noise_mode)["image"]
            glob_ = glob_ + nets.perceptual(img_u, img_s).mean()
        loss = loss + cfg.lambda_global * glob_
    return loss
