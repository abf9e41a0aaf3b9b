"""Camera utilities with EG3D's semantics (camera_utils.py) and the 25-d camera label.

Cameras sit on a sphere of `radius` about the ORIGIN and look at `lookat_position`; y is up.
The label is 16 cam2world entries (OpenCV convention, row-major) + 9 normalised intrinsics.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _normalize(v: Tensor) -> Tensor:
    return v / torch.norm(v, dim=-1, keepdim=True)


def create_cam2world_matrix(forward_vector: Tensor, origin: Tensor) -> Tensor:
    """[B, 3] forward directions and origins → [B, 4, 4] cam2world (no roll, y-up)."""
    forward_vector = _normalize(forward_vector)
    up_vector = torch.tensor([0, 1, 0], dtype=torch.float, device=origin.device).expand_as(forward_vector)
    right_vector = -_normalize(torch.cross(up_vector, forward_vector, dim=-1))
    up_vector = _normalize(torch.cross(forward_vector, right_vector, dim=-1))
    rotation = torch.eye(4, device=origin.device).unsqueeze(0).repeat(forward_vector.shape[0], 1, 1)
    rotation[:, :3, :3] = torch.stack((right_vector, up_vector, forward_vector), dim=-1)
    translation = torch.eye(4, device=origin.device).unsqueeze(0).repeat(forward_vector.shape[0], 1, 1)
    translation[:, :3, 3] = origin
    return translation @ rotation


def pose_from_angles(h: Tensor, v: Tensor, lookat_position: Tensor, radius: float) -> Tensor:
    """Yaw-like azimuth h and polar angle v [B, 1] (radians; pi/2, pi/2 = frontal) → cam2world [B, 4, 4]."""
    v = torch.clamp(v, 1e-5, math.pi - 1e-5)
    phi = torch.arccos(1 - 2 * (v / math.pi))
    origins = torch.zeros((h.shape[0], 3), device=h.device)
    origins[:, 0:1] = radius * torch.sin(phi) * torch.cos(math.pi - h)
    origins[:, 2:3] = radius * torch.sin(phi) * torch.sin(math.pi - h)
    origins[:, 1:2] = radius * torch.cos(phi)
    return create_cam2world_matrix(lookat_position.to(origins.device) - origins, origins)


class LookAtPoseSampler:
    """EG3D's sampler: Gaussian jitter about (horizontal_mean, vertical_mean), looking at a point."""

    @staticmethod
    def sample(horizontal_mean: float, vertical_mean: float, lookat_position: Tensor,
               horizontal_stddev: float = 0, vertical_stddev: float = 0, radius: float = 1, batch_size: int = 1,
               device: str | torch.device = "cpu", generator: torch.Generator | None = None) -> Tensor:
        h = torch.randn((batch_size, 1), device=device, generator=generator) * horizontal_stddev + horizontal_mean
        v = torch.randn((batch_size, 1), device=device, generator=generator) * vertical_stddev + vertical_mean
        return pose_from_angles(h, v, torch.as_tensor(lookat_position, dtype=torch.float32, device=device), radius)


def FOV_to_intrinsics(fov_degrees: float, device: str | torch.device = "cpu") -> Tensor:  # noqa: N802 (EG3D name)
    """Normalised intrinsics [3, 3]; keeps EG3D's 3.14159 and 1.414 approximations (focal ≈ 4.2634 at 18.837°)."""
    focal_length = float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414))
    return torch.tensor([[focal_length, 0, 0.5], [0, focal_length, 0.5], [0, 0, 1]], device=device)


def camera_label(cam2world: Tensor, intrinsics: Tensor) -> Tensor:
    """cam2world [B, 4, 4] + intrinsics [3, 3] or [B, 3, 3] → c [B, 25]."""
    b = cam2world.shape[0]
    intrinsics = intrinsics.to(cam2world.device).reshape(-1, 9).expand(b, 9)
    return torch.cat([cam2world.reshape(b, 16), intrinsics], dim=1)


def yaw_pitch_cameras(yaw: Tensor, pitch: float | Tensor, lookat: tuple[float, float, float], radius: float,
                      fov_deg: float) -> Tensor:
    """Camera labels [B, 25] for yaw offsets [B] (radians from frontal) at polar angle `pitch`."""
    h = (math.pi / 2 + yaw).reshape(-1, 1)
    v = torch.as_tensor(pitch, dtype=torch.float32, device=yaw.device).expand_as(h)
    cam2world = pose_from_angles(h, v, torch.tensor(lookat, dtype=torch.float32), radius)
    return camera_label(cam2world, FOV_to_intrinsics(fov_deg, device=yaw.device))


def frontal_camera(batch_size: int, lookat: tuple[float, float, float] = (0.0, 0.0, 0.2), radius: float = 2.7,
                   fov_deg: float = 18.837, device: str | torch.device = "cpu") -> Tensor:
    """The frontal pose (pi/2, pi/2) that conditions the mapping network, at `radius` with `fov_deg`
    (the pivot does not change this pose). Callers pass their camera config's radius and FOV."""
    return yaw_pitch_cameras(torch.zeros(batch_size, device=device), math.pi / 2, lookat, radius, fov_deg)

