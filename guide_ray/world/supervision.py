"""3D supervision of the world generator's tri-planes from the renderer's ray hits.

Image distillation alone teaches the tri-planes slowly: every pixel's gradient is spread over
the volume-rendering weights of 18 samples and then through the super-resolution. The renderer
knows more than its image: where each ray first meets the head and that point's colour. So each
of `rays` random pixels gives four decoder queries (no volume rendering, no super-resolution):
the hit point and a point just behind it must be opaque (σ well above the softplus shift) with
the hit's colour in the decoder's first three channels (the raw image's RGB); a point just in front
of the hit and one anywhere between the ray start and the hit must be empty. Rays that miss the
head hit a backdrop inside the box, behind every head, painted with the renderer's background at
that image row, so the raw image has a background to composite against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from guide_ray.models.eg3d.rendering import sample_from_planes
from guide_ray.models.eg3d.triplane import PLANE_CHANNELS, TriPlaneGenerator
from guide_ray.world.renderer import NO_HIT, background, surface

RESOLUTION = 64          # pixel grid the rays are drawn from
SHELL = 0.04             # depth behind a hit that is still inside the head
GAP = 0.02               # margin in front of a hit that is still empty
NEAR = 0.10              # "just in front" reaches this far before the margin
BACKDROP_T = 3.12        # ray distance of the backdrop: behind every head, inside the box
OPAQUE_SIGMA = 20.0      # σ an inside point is pushed to (softplus(σ − 1) ≈ 19: opaque within 0.1)


def point_losses(G: TriPlaneGenerator, planes: Tensor, identity: Tensor, cameras: Tensor, nuisance: Tensor,
                 rays: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(occupancy loss, colour loss) of tri-planes [B, 96, P, P] against the renderer's view of
    `identity` from `cameras` under `nuisance`; ray and depth draws come from `generator`."""
    b = identity.shape[0]
    origins, dirs, t, colour = surface(identity, cameras, nuisance, RESOLUTION)
    pick = torch.randint(origins.shape[1], (b, rays), generator=generator)
    take = lambda a: torch.gather(a, 1, pick[..., None].expand(-1, -1, 3))  # noqa: E731
    origins, dirs, colour, t = take(origins), take(dirs), take(colour.clamp(0, 1)), torch.gather(t, 1, pick)
    head = t < NO_HIT
    t_hit = torch.where(head, t, torch.full_like(t, BACKDROP_T))
    colour = torch.where(head[..., None], colour, background((pick // RESOLUTION).float() / (RESOLUTION - 1)))
    u = lambda: torch.rand(b, rays, generator=generator)  # noqa: E731
    ray_start = G.rendering_kwargs["ray_start"]
    depths = torch.stack([
        t_hit,                                                                  # on the surface
        t_hit + SHELL * u(),                                                    # just inside
        (t_hit - GAP - NEAR * u()).clamp_min(ray_start),                         # just in front
        ray_start + (t_hit - GAP - ray_start).clamp_min(0) * u(),               # anywhere in front
    ], 2)                                                                       # [B, rays, 4]
    points = (origins[:, :, None] + depths[..., None] * dirs[:, :, None]).reshape(b, -1, 3)
    planes3 = planes.view(b, 3, PLANE_CHANNELS, planes.shape[-2], planes.shape[-1])
    features = sample_from_planes(G.renderer.plane_axes, planes3, points, box_warp=G.rendering_kwargs["box_warp"])
    out = G.decoder(features, None)
    sigma = out["sigma"].view(b, rays, 4)
    inside = torch.tensor([1.0, 1.0, 0.0, 0.0]).expand_as(sigma)
    occupancy = (F.binary_cross_entropy_with_logits(sigma - 1, inside)
                 + (F.relu(OPAQUE_SIGMA - sigma) * inside).sum() / inside.sum() / OPAQUE_SIGMA)
    rgb = out["rgb"][..., :3].view(b, rays, 4, 3)[:, :, :2]
    return occupancy, F.mse_loss(rgb, colour[:, :, None].expand_as(rgb))
