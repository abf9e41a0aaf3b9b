"""ID / ID_others: identity cosine of the same latent before vs after unlearning, over a yaw sweep.

As in GUIDE's evaluation: 11 views, yaw linspace(−pi/12, pi/12), pitch pi/2 − 0.2, images
quantised to 8 bits as the saved PNGs are, one embedder for both renders. Lower = forgotten.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from guide_ray.config.guide import CameraConfig
from guide_ray.models.eg3d.camera import yaw_pitch_cameras
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.nets.base import IdentityEmbedder
from guide_ray.utils.images import dequantize, quantize_like_png

N_VIEWS = 11


@torch.no_grad()
def render_views(G: TriPlaneGenerator, w: Tensor, camera: CameraConfig, n_views: int = N_VIEWS,
                 seed: int = 0) -> Tensor:
    """w [1, L, C] rendered over the yaw sweep → [n_views, 3, R, R], constant noise, seeded depth draws."""

    yaws = torch.linspace(-camera.yaw_range, camera.yaw_range, n_views, device=w.device)
    c = yaw_pitch_cameras(yaws, math.pi / 2 + camera.pitch_offset, camera.look_at_point, camera.radius,
                          camera.fov_deg)
    rng = torch.Generator(device=w.device).manual_seed(seed)
    images = [G.synthesis(w, c[i:i + 1], noise_mode="const", generator=rng)["image"] for i in range(n_views)]
    return torch.cat(images)


@torch.no_grad()
def id_similarity(G_before: TriPlaneGenerator, G_after: TriPlaneGenerator, w: Tensor,
                  embedder: IdentityEmbedder, camera: CameraConfig, n_views: int = N_VIEWS, seed: int = 0) -> float:
    """Mean cosine between f(G_before(w, view)) and f(G_after(w, view)) over the sweep."""
    before = dequantize(quantize_like_png(render_views(G_before, w, camera, n_views, seed)))
    after = dequantize(quantize_like_png(render_views(G_after, w, camera, n_views, seed)))
    return float((embedder(before) * embedder(after)).sum(dim=1).mean())
