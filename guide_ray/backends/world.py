"""The `world` backend: the trained synthetic face world (docs/world.md).

G_s is the trained `world` TriPlaneGenerator, an EG3D distilled from the procedural renderer, so
everything camera-related is EG3D's (GUIDE's yaw sweep, frontal-camera mapping, projection
inversion). What only this backend has is ground truth: "real" images for ΔFID_real are renders
of the in-domain population by the renderer itself, at the cameras the FID samples use.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.backends.eg3d import EG3DBackend
from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import FidSpec
from guide_ray.metrics import fid
from guide_ray.metrics.stats import FidStats
from guide_ray.models.eg3d.camera import yaw_pitch_cameras
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.nets.inception import FeatureExtractor
from guide_ray.utils.seeding import derive_seed
from guide_ray.world.nuisance import canonical_nuisance
from guide_ray.world.population import z_to_identity
from guide_ray.world.renderer import render as render_world
from guide_ray.world.shipped import load_world_generator, world_source

RENDERER_ID = "world-renderer"     # the "generator" of real images in a StatsKey


class _Renderer(nn.Module):
    """The renderer seen as a generator of latents z (z ↦ identity by the world's fixed map), so the
    real set is drawn exactly as FID samples are (fid.generator_features), from its own seed."""

    def __init__(self, z_dim: int, resolution: int) -> None:
        super().__init__()
        self.z_dim, self.resolution = z_dim, resolution


class WorldBackend(EG3DBackend):
    def load_generator(self, weights_dir: Path, device: torch.device) -> TriPlaneGenerator:
        """The trained world's generator, hash-checked (`<weights_dir>/world/`, else the shipped one)."""
        return load_world_generator(world_source(weights_dir)).to(device)

    def real_stats(self, G_s: TriPlaneGenerator, extractor: FeatureExtractor, spec: FidSpec, camera: CameraConfig,
                   device: torch.device, cache_dir: Path) -> FidStats:
        """Statistics of `spec.num_samples` renderer images of the in-domain population (canonical
        light, neutral expression, one ray per pixel: exactly what G_s was distilled on), yaw U(±yaw_range) at the camera's
        pitch, from seed derive_seed(spec.seed, "world-real"); cached like G_s's statistics."""
        seed = derive_seed(spec.seed, "world-real")
        key = fid.StatsKey(generator=RENDERER_ID, extractor=extractor.name, n=spec.num_samples, seed=seed,
                           role="pretrained", camera=camera, batch_size=spec.batch_size, noise_mode="const")

        def sample(renderer: _Renderer, z: Tensor, yaw: Tensor, rng: torch.Generator, noise_mode: str) -> Tensor:
            c = yaw_pitch_cameras(yaw.cpu(), torch.pi / 2 + camera.pitch_offset, camera.look_at_point, camera.radius,
                                  camera.fov_deg)
            return render_world(z_to_identity(z.cpu()), c, canonical_nuisance(len(z)), renderer.resolution,
                                supersample=1)

        def compute() -> FidStats:
            renderer = _Renderer(G_s.z_dim, G_s.img_resolution)
            return fid.generator_stats(renderer, spec.num_samples, seed=seed, role="pretrained", camera=camera,
                                       extractors=[extractor], render=sample, batch_size=spec.batch_size,
                                       device="cpu", noise_mode="const")[extractor.name]
        return fid.StatsCache(cache_dir).get_or_compute(key, compute)


BACKEND = WorldBackend
