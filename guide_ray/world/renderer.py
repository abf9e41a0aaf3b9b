"""The world's ground truth: a procedural head, ray-cast analytically and Lambert-shaded.

A head is a hard union of ellipsoids (cranium, jaw, nose, two ears, two eyeballs, neck) plus a hair
shell: an inflated cranium cut below the hair line. Brows, lips and the open mouth are painted on
the skin by position. Each pixel's ray is intersected with every primitive in closed form (no
marching, so no step-size artefacts and exact determinism), the nearest hit wins, and its colour is
albedo * (ambient + intensity * max(0, n . light)). Rays come from EG3D's own RaySampler, so a camera
label means the same view here as in the generator. Images are supersampled and box-filtered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from guide_ray.models.eg3d.rendering import RaySampler
from guide_ray.world.nuisance import NUISANCE
from guide_ray.world.population import PARAM_INDEX

BACKGROUND_TOP = (0.80, 0.82, 0.86)
BACKGROUND_BOTTOM = (0.55, 0.57, 0.62)
SKIN_LIGHT, SKIN_DARK = (0.96, 0.80, 0.68), (0.42, 0.28, 0.20)
HAIR_DARK, HAIR_LIGHT = (0.07, 0.055, 0.05), (0.78, 0.64, 0.38)
IRIS_BLUE, IRIS_BROWN = (0.25, 0.45, 0.75), (0.35, 0.20, 0.08)
SCLERA, PUPIL, MOUTH_INSIDE = (0.93, 0.93, 0.90), (0.03, 0.03, 0.03), (0.22, 0.06, 0.06)
# primitive order; HAIR is last and handled separately (two roots, cut below the hair line)
HEAD, JAW, NOSE, EAR_L, EAR_R, EYE_L, EYE_R, NECK, HAIR = range(9)
NO_HIT = 1e4
HEAD_Y = 0.03  # cranium centre height


def _p(identity: Tensor, name: str) -> Tensor:
    return identity[:, PARAM_INDEX[name]]


def _lerp(a: tuple, b: tuple, w: Tensor) -> Tensor:
    a_, b_ = torch.tensor(a), torch.tensor(b)
    return a_ + (b_ - a_) * w[:, None]


def _face_z(identity: Tensor, x: Tensor | float, y: Tensor) -> Tensor:
    """z of the cranium's front surface at (x, y) (clamped inside the silhouette)."""
    w, h, d = _p(identity, "head_w"), _p(identity, "head_h"), _p(identity, "head_d")
    inside = 1 - (torch.as_tensor(x) / w) ** 2 - ((y - HEAD_Y) / h) ** 2
    return d * inside.clamp_min(0.05).sqrt()



def primitives(identity: Tensor) -> tuple[Tensor, Tensor]:
    """Ellipsoid centres and radii [B, 9, 3] of each identity (order: HEAD .. HAIR)."""
    p = lambda name: _p(identity, name)  # noqa: E731
    b = identity.shape[0]
    zeros, ones = torch.zeros(b), torch.ones(b)
    head_w, head_h, head_d = p("head_w"), p("head_h"), p("head_d")
    jaw_h = (HEAD_Y - p("chin_y")) * 0.55
    jaw = (zeros, p("chin_y") + jaw_h, zeros + 0.03), (p("jaw_w"), jaw_h, head_d * 0.82)
    nose_z = _face_z(identity, 0.0, p("nose_y")) + p("nose_out") - 0.045
    nose = (zeros, p("nose_y"), nose_z), (p("nose_w"), p("nose_len"), ones * 0.045)
    ear_y = p("eye_y") - 0.04
    ear_l = (-head_w * 0.97, ear_y, zeros - 0.02), (ones * 0.018, p("ear_size"), ones * 0.032)
    ear_r = (head_w * 0.97, ear_y, zeros - 0.02), (ones * 0.018, p("ear_size"), ones * 0.032)
    eye_z = _face_z(identity, p("eye_sep"), p("eye_y")) - 0.75 * p("eye_r")
    eye_r3 = (p("eye_r"),) * 3
    eye_l = (-p("eye_sep"), p("eye_y"), eye_z), eye_r3
    eye_r = (p("eye_sep"), p("eye_y"), eye_z), eye_r3
    neck = (zeros, zeros - 0.30, zeros - 0.05), (p("jaw_w") * 0.75, ones * 0.20, head_d * 0.55)
    v = p("hair_volume")
    hair = (zeros, zeros + HEAD_Y + v * 0.5, zeros - v * 0.5), (head_w + v, head_h + v, head_d + v)
    head = (zeros, zeros + HEAD_Y, zeros), (head_w, head_h, head_d)
    parts = (head, jaw, nose, ear_l, ear_r, eye_l, eye_r, neck, hair)
    centres = torch.stack([torch.stack(c, -1) for c, _ in parts], 1)
    radii = torch.stack([torch.stack(r, -1) for _, r in parts], 1)
    return centres, radii


def _intersect(origins: Tensor, dirs: Tensor, centres: Tensor, radii: Tensor) -> tuple[Tensor, Tensor]:
    """Both ray parameters t0 <= t1 [B, N, K] of rays [B, N, 3] with ellipsoids [B, K, 3]; NO_HIT if missed."""
    o = (origins[:, :, None] - centres[:, None]) / radii[:, None]
    d = dirs[:, :, None] / radii[:, None]
    a = (d * d).sum(-1)
    b = 2 * (o * d).sum(-1)
    c = (o * o).sum(-1) - 1
    disc = b * b - 4 * a * c
    root = disc.clamp_min(0).sqrt()
    t0, t1 = (-b - root) / (2 * a), (-b + root) / (2 * a)
    miss = disc <= 0
    return t0.masked_fill(miss, NO_HIT), t1.masked_fill(miss, NO_HIT)


def _hair_kept(identity: Tensor, x: Tensor) -> Tensor:
    """Which points x [B, N, 3] of the hair shell are hair: above a line that drops from the
    hair line at the front to the nape at the back."""
    back = ((0.08 - x[..., 2]) / 0.22).clamp(0, 1)
    threshold = _p(identity, "hairline")[:, None] * (1 - back) + (-0.16) * back
    return x[..., 1] > threshold


def _hits(identity: Tensor, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Nearest hit per ray: t [B, N], primitive index [B, N], its centre and radii [B, N, 3]."""
    centres, radii = primitives(identity)
    t0, t1 = _intersect(origins, dirs, centres, radii)
    t0 = t0.masked_fill(t0 <= 0, NO_HIT)
    hair0, hair1 = t0[..., HAIR], t1[..., HAIR]
    keep0 = _hair_kept(identity, origins + hair0[..., None] * dirs)
    keep1 = _hair_kept(identity, origins + hair1[..., None] * dirs)
    hair_t = torch.where(keep0, hair0, torch.where(keep1 & (hair1 < NO_HIT), hair1, NO_HIT))
    t_all = torch.cat([t0[..., :HAIR], hair_t[..., None]], -1)
    t, index = t_all.min(-1)
    gather = index[..., None, None].expand(-1, -1, 1, 3)
    n = index.shape[1]
    centre = torch.gather(centres[:, None].expand(-1, n, -1, -1), 2, gather)[:, :, 0]
    radius = torch.gather(radii[:, None].expand(-1, n, -1, -1), 2, gather)[:, :, 0]
    return t, index, centre, radius


def _albedo(identity: Tensor, nuisance: Tensor, x: Tensor, index: Tensor, centre: Tensor,
            radius: Tensor) -> Tensor:
    """Surface colour [B, N, 3] at hit points x [B, N, 3]."""
    p = lambda name: _p(identity, name)[:, None]  # noqa: E731
    q = lambda name: nuisance[:, NUISANCE.index(name)][:, None]  # noqa: E731
    skin = _lerp(SKIN_LIGHT, SKIN_DARK, _p(identity, "skin_tone"))
    tint = _p(identity, "skin_tint")[:, None] * torch.tensor([-1.0, 1.0, 0.6])
    skin = (skin + tint).clamp(0, 1)[:, None]
    hair = _lerp(HAIR_DARK, HAIR_LIGHT, _p(identity, "hair_tone"))
    hair = (hair + _p(identity, "hair_red")[:, None] * torch.tensor([0.9, -0.1, -0.2])).clamp(0, 1)[:, None]
    iris = _lerp(IRIS_BLUE, IRIS_BROWN, _p(identity, "iris_tone"))[:, None]
    lips = (skin * (1 - 0.35 * p("lip_red")[..., None]) + torch.tensor([0.55, 0.05, 0.1]) * p("lip_red")[..., None])
    xx, yy, zz = x[..., 0], x[..., 1], x[..., 2]
    colour = skin.expand_as(x).clone()
    on_face = ((index == HEAD) | (index == JAW)) & (zz > 0.05)
    # brows
    dx = xx.abs() - p("eye_sep")
    brow_y = p("eye_y") + p("brow_gap") + 0.018 * q("brow_raise") + p("brow_tilt") * dx * 0.4
    brow = on_face & (dx.abs() < 1.5 * p("eye_r") + 0.008) & ((yy - brow_y).abs() < p("brow_thick"))
    colour = torch.where(brow[..., None], hair * 0.8, colour)
    # lips and mouth
    opening = q("mouth_open") * p("lip_h") * 1.2
    lip_h = p("lip_h") + opening
    lip = on_face & ((xx / p("mouth_w")) ** 2 + ((yy - p("mouth_y")) / lip_h) ** 2 < 1)
    colour = torch.where(lip[..., None], lips.expand_as(x), colour)
    inside = lip & ((xx / (0.85 * p("mouth_w"))) ** 2 + ((yy - p("mouth_y")) / opening.clamp_min(1e-4)) ** 2 < 1)
    colour = torch.where(inside[..., None], torch.tensor(MOUTH_INSIDE).expand_as(x), colour)
    # eyes: sclera, iris, pupil by the angle from the eyeball's forward axis
    eye = (index == EYE_L) | (index == EYE_R)
    forward = (x[..., 2] - centre[..., 2]) / radius[..., 2]
    eye_colour = torch.where((forward > 0.95)[..., None], torch.tensor(PUPIL).expand_as(x),
                             torch.where((forward > 0.80)[..., None], iris.expand_as(x),
                                         torch.tensor(SCLERA).expand_as(x)))
    colour = torch.where(eye[..., None], eye_colour, colour)
    colour = torch.where((index == HAIR)[..., None], hair.expand_as(x), colour)
    colour = torch.where((index == NECK)[..., None], skin.expand_as(x) * 0.85, colour)
    return colour


def _shade(nuisance: Tensor, normals: Tensor, albedo: Tensor) -> Tensor:
    az, el = nuisance[:, NUISANCE.index("light_azimuth")], nuisance[:, NUISANCE.index("light_elevation")]
    light = torch.stack([torch.sin(az) * torch.cos(el), torch.sin(el), torch.cos(az) * torch.cos(el)], -1)
    lambert = (normals * light[:, None]).sum(-1).clamp_min(0)
    intensity = nuisance[:, NUISANCE.index("light_intensity")][:, None]
    ambient = nuisance[:, NUISANCE.index("ambient")][:, None]
    return albedo * (ambient + intensity * lambert)[..., None]


def surface(identity: Tensor, cameras: Tensor, nuisance: Tensor, resolution: int) -> tuple[Tensor, ...]:
    """Per-pixel ray hits: origins, directions [B, N, 3], hit distance t [B, N] (NO_HIT where the
    ray misses the head) and the shaded colour [B, N, 3] there (N = resolution², row-major; bright
    light can take it a little above 1: `render` clamps after filtering).

    What the image is made of, exposed so the generator can be supervised in 3D (world/supervision.py).
    """
    b = identity.shape[0]
    if cameras.shape != (b, 25) or nuisance.shape != (b, len(NUISANCE)):
        raise ValueError(f"expected cameras [{b}, 25] and nuisance [{b}, {len(NUISANCE)}], "
                         f"got {list(cameras.shape)} and {list(nuisance.shape)}")
    origins, dirs = RaySampler()(cameras[:, :16].view(-1, 4, 4), cameras[:, 16:].view(-1, 3, 3), resolution)
    t, index, centre, radius = _hits(identity, origins, dirs)
    x = origins + t.clamp_max(10)[..., None] * dirs
    normals = F.normalize((x - centre) / radius**2, dim=-1)
    colour = _shade(nuisance, normals, _albedo(identity, nuisance, x, index, centre, radius))
    return origins, dirs, t, colour


def background(rows: Tensor) -> Tensor:
    """The backdrop's colour [..., 3] at image rows given as a fraction of the height (0 = top)."""
    return torch.tensor(BACKGROUND_TOP) * (1 - rows[..., None]) + torch.tensor(BACKGROUND_BOTTOM) * rows[..., None]


def render(identity: Tensor, cameras: Tensor, nuisance: Tensor, resolution: int = 64,
           supersample: int = 2) -> Tensor:
    """Identities [B, P], camera labels [B, 25], nuisance [B, 6] → images [B, 3, R, R] in [-1, 1]."""
    b, size = identity.shape[0], resolution * supersample
    _, _, t, colour = surface(identity, cameras, nuisance, size)
    rows = torch.linspace(0, 1, size).repeat_interleave(size)[None]
    image = torch.where((t < NO_HIT)[..., None], colour, background(rows).expand_as(colour))
    image = image.permute(0, 2, 1).reshape(b, 3, size, size)
    return F.avg_pool2d(image, supersample).clamp(0, 1) * 2 - 1
