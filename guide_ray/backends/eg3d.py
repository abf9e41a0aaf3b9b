"""EG3D backends (`tiny`, `eg3d-ffhq512-128`): everything camera-, tri-plane- and GOAE-specific.

GUIDE's protocol, stated once: the Random scenario maps z with the frontal camera; the ID metric
renders a yaw sweep (linspace(-yaw_range, yaw_range), pitch pi/2 + pitch_offset); FID samples
are rendered at a uniform random yaw with the mapping conditioned on the frontal pose; photos are
inverted by GOAE (or projected, for the stand-in world); the artifact is the synthesis network.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from guide_ray.backends import GeneratorBackend, SampleRender, Views, cpu_state, load_state
from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import InversionSpec
from guide_ray.guide.inversion import GoaeInverter, Inverter, ProjectionInverter, load_face_image
from guide_ray.models import weights as weight_registry
from guide_ray.models.eg3d.camera import frontal_camera, yaw_pitch_cameras
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.nets.base import LossNets
from guide_ray.utils.seeding import derive_seed, make_rng


class EG3DBackend(GeneratorBackend):
    def __init__(self, info) -> None:
        super().__init__(info)
        self._encoder = None                      # GOAE, loaded on the first photo

    def load_generator(self, weights_dir: Path, device: torch.device) -> TriPlaneGenerator:
        """The embedded tiny world (stand-in), or the released EG3D pickle (read without executing it)."""
        if self.info.stand_in:
            from guide_ray.models.eg3d.presets import build_generator
            G = build_generator("tiny")
        else:
            from guide_ray.models.eg3d.checkpoint import load_eg3d
            G = load_eg3d(weight_registry.resolve_file(weight_registry.EG3D_PKL.name, weights_dir))
        return G.to(device).eval().requires_grad_(False)

    def source_latent(self, G: TriPlaneGenerator, seed: int, camera: CameraConfig) -> Tensor:
        return random_source_latent(G, seed, camera)

    def id_views(self, camera: CameraConfig, n_views: int, seed: int = 0) -> Views:
        return yaw_sweep(camera, n_views, seed)

    def fid_render(self, camera: CameraConfig) -> SampleRender:
        def render(G: TriPlaneGenerator, z: Tensor, yaw: Tensor, rng: torch.Generator, noise_mode: str) -> Tensor:
            c = yaw_pitch_cameras(yaw, math.pi / 2 + camera.pitch_offset, camera.look_at_point, camera.radius,
                                  camera.fov_deg)                                              # [B, 25]
            c_front = frontal_camera(len(z), camera.look_at_point, camera.radius, camera.fov_deg, z.device)
            ws = G.mapping(z, c_front, truncation_psi=1)                                    # [B, num_ws, w_dim]
            return G.synthesis(ws, c, noise_mode=noise_mode, generator=rng)["image"]
        return render

    def load_photo(self, path: Path) -> Tensor:
        return load_face_image(path)

    def inverter(self, G: TriPlaneGenerator, nets: LossNets, spec: InversionSpec, weights_dir: Path,
                 device: torch.device, seed: int) -> Inverter:
        if spec.resolved_method(self.name) == "projection":
            return ProjectionInverter(G, nets.perceptual, steps=spec.projection_steps, lr=spec.projection_lr,
                                      seed=derive_seed(seed, "invert"))
        if self._encoder is None:                 # loaded once per worker
            from guide_ray.models.goae.load import load_goae_encoder
            path = weight_registry.resolve_file(weight_registry.GOAE_ENCODER.name, weights_dir)
            self._encoder = load_goae_encoder(path, device)
        generator = make_rng(seed, "invert", device) if spec.goae_train_mode else None
        return GoaeInverter(self._encoder, G.backbone.mapping.w_avg, train_mode=spec.goae_train_mode,
                            generator=generator)

    def unlearned_state(self, G_u: TriPlaneGenerator) -> dict[str, Tensor]:
        return cpu_state(G_u.backbone.synthesis)

    def load_unlearned(self, G_s: TriPlaneGenerator, state: dict[str, Tensor]) -> TriPlaneGenerator:
        return load_state(G_s, lambda G: G.backbone.synthesis, state)

    # FFHQ-trained EG3D covers poses from profile to profile; the sweep goes that far, not GUIDE's ±pi/12
    yaw_limit = math.pi / 2

    def view_camera(self, camera: CameraConfig, yaw: Tensor, pitch_offset: Tensor) -> Tensor:
        polar = (math.pi / 2 + pitch_offset).reshape(-1, 1)                       # [B, 1]
        return yaw_pitch_cameras(yaw, polar, camera.look_at_point, camera.radius, camera.fov_deg)


@torch.no_grad()
def random_source_latent(G_s: TriPlaneGenerator, seed: int, camera: CameraConfig) -> Tensor:
    """GUIDE's Random scenario: w_u = mapping(z, c_front), z ~ N(0, I) from `seed` (drawn on the CPU,
    so the identity does not depend on the device), psi = 1 → [1, L, C]. c_front uses the
    camera's radius and FOV, as the unlearning loop's conditioning does."""
    z = torch.randn(1, G_s.z_dim, generator=make_rng(seed, "source"))
    device = G_s.backbone.mapping.w_avg.device
    c_front = frontal_camera(1, camera.look_at_point, camera.radius, camera.fov_deg, device)
    return G_s.mapping(z.to(device), c_front)


def yaw_sweep(camera: CameraConfig, n_views: int, seed: int = 0) -> Views:
    """GUIDE's evaluation views: n_views yaws in linspace(±yaw_range), constant noise, seeded depth draws."""
    @torch.no_grad()
    def render(G: TriPlaneGenerator, w: Tensor) -> Tensor:
        yaws = torch.linspace(-camera.yaw_range, camera.yaw_range, n_views, device=w.device)
        c = yaw_pitch_cameras(yaws, math.pi / 2 + camera.pitch_offset, camera.look_at_point, camera.radius,
                              camera.fov_deg)
        rng = torch.Generator(device=w.device).manual_seed(seed)
        return torch.cat([G.synthesis(w, c[i:i + 1], noise_mode="const", generator=rng)["image"]
                          for i in range(n_views)])
    return render


BACKEND = EG3DBackend
