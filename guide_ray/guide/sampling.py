"""Per-step random draws of the GUIDE loop, all from one `torch.Generator`.

One camera per step (shared by every term and both generators), N_a adjacency neighbours and
N_g global latents. Drawing everything from the caller's generator makes a seed reproduce the
same run on any device order or actor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from guide_ray.config.guide import CameraConfig, GuideConfig
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.models.eg3d.camera import yaw_pitch_cameras


@dataclass(frozen=True)
class StepLatents:
    """One step's latent batch: row i of `w_src` is rendered by G_u, row i of `w_tgt` by G_s.

    Rows are ordered [local (0 or 1), adjacency (n_adj), global (n_global)].
    """

    w_src: Tensor   # [B, L, C]
    w_tgt: Tensor   # [B, L, C]
    n_local: int
    n_adj: int
    n_global: int


def step_camera(camera: CameraConfig, rng: torch.Generator, device: torch.device) -> Tensor:
    """The step's camera label [1, 25]: yaw ~ U(−yaw_range, yaw_range), pitch pi/2 + pitch_offset."""
    yaw = (torch.rand(1, generator=rng, device=device) * 2 - 1) * camera.yaw_range
    return yaw_pitch_cameras(yaw, math.pi / 2 + camera.pitch_offset, camera.look_at_point, camera.radius,
                             camera.fov_deg)


def adjacency_deltas(w_u: Tensor, w_r: Tensor, alpha: Tensor) -> Tensor:
    """Δ = α (w_r − w_u) / ‖w_r − w_u‖_F: steps of length α from w_u towards random latents.

    w_u: [1, L, C]; w_r: [N_a, L, C]; alpha: [N_a] → [N_a, L, C].
    """
    direction = w_r - w_u
    norm = direction.flatten(1).norm(dim=1).view(-1, 1, 1)
    return alpha.view(-1, 1, 1) * direction / norm


def sample_step_latents(cfg: GuideConfig, w_u: Tensor, w_t: Tensor, G_s: UnlearnableGenerator, c_front: Tensor,
                        rng: torch.Generator) -> StepLatents:
    """Build the batch for one step; random latents come from the frozen G_s's mapping network.

    Adjacency: w_r = mapping(z) (W, broadcast over layers), the same Δ added to w_u and w_t.
    Global: fresh mapping(z) latents rendered by both generators.
    """
    device = w_u.device
    src, tgt = [], []
    n_local = int(cfg.loss_local)
    if n_local:
        src.append(w_u)
        tgt.append(w_t)
    n_adj = cfg.n_adj if cfg.loss_adj else 0
    if n_adj:
        z = torch.randn(n_adj, G_s.z_dim, generator=rng, device=device)
        alpha = torch.rand(n_adj, generator=rng, device=device) * cfg.alpha_max   # α ~ U(0, α_max)
        with torch.no_grad():
            w_r = G_s.mapping(z, c_front.expand(n_adj, -1))
        delta = adjacency_deltas(w_u, w_r, alpha)
        src.append(w_u + delta)
        tgt.append(w_t + delta)
    n_global = cfg.n_global if cfg.loss_global else 0
    if n_global:
        z = torch.randn(n_global, G_s.z_dim, generator=rng, device=device)
        with torch.no_grad():
            w_g = G_s.mapping(z, c_front.expand(n_global, -1))
        src.append(w_g)
        tgt.append(w_g)
    return StepLatents(torch.cat(src), torch.cat(tgt), n_local, n_adj, n_global)
