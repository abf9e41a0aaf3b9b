"""What varies between photos of one identity: the camera (EG3D's 25-d label), light and expression.

Cameras use EG3D's FFHQ rig (guide_ray.models.eg3d.camera): an orbit of radius 2.7 about the
origin, looking at the pivot (0, 0, 0.2), FOV 18.837 degrees, yaw measured from frontal.
Nuisance vectors are [B, len(NUISANCE)]: light azimuth and elevation (radians, world frame),
light intensity, ambient level, mouth opening (0..1) and brow raise (0..1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from guide_ray.models.eg3d.camera import yaw_pitch_cameras

CAMERA_PIVOT = (0.0, 0.0, 0.2)
CAMERA_RADIUS = 2.7
FOV_DEG = 18.837
NUISANCE = ("light_azimuth", "light_elevation", "light_intensity", "ambient", "mouth_open", "brow_raise")
CANONICAL = (-0.35, 0.45, 0.75, 0.35, 0.0, 0.0)  # the generator's lighting, neutral expression
RANDOM_RANGES = ((-0.9, 0.9), (0.0, 0.9), (0.55, 0.9), (0.25, 0.45), (0.0, 1.0), (0.0, 1.0))
YAW_RANGE = 0.6    # training yaw ~ U(-0.6, 0.6): wider than GUIDE's ±pi/12
PITCH_RANGE = 0.15  # polar angle pi/2 + U(-0.15, 0.15)


def cameras(yaw: Tensor, pitch_offset: Tensor | float = 0.0) -> Tensor:
    """Camera labels [B, 25] for yaw [B] (radians from frontal) and polar offsets from pi/2."""
    pitch = math.pi / 2 + torch.as_tensor(pitch_offset, dtype=torch.float32).expand_as(yaw)
    return yaw_pitch_cameras(yaw, pitch.reshape(-1, 1), CAMERA_PIVOT, CAMERA_RADIUS, FOV_DEG)


def canonical_nuisance(n: int) -> Tensor:
    return torch.tensor(CANONICAL).expand(n, len(NUISANCE)).clone()


def sample_nuisance(n: int, generator: torch.Generator) -> Tensor:
    """Random light and expression [n, 6], uniform in RANDOM_RANGES."""
    lo, hi = torch.tensor(RANDOM_RANGES).T
    return lo + (hi - lo) * torch.rand(n, len(NUISANCE), generator=generator)


def sample_cameras(n: int, generator: torch.Generator) -> Tensor:
    """Random camera labels [n, 25]: yaw U(-0.6, 0.6), polar offset U(-0.15, 0.15)."""
    yaw = (torch.rand(n, generator=generator) * 2 - 1) * YAW_RANGE
    pitch = (torch.rand(n, generator=generator) * 2 - 1) * PITCH_RANGE
    return cameras(yaw, pitch)
