"""LPIPS_drift: how far unlearning moved the generator's images, on a fixed seeded probe set.

FID_pre needs thousands of samples before it means anything; a hyperparameter search scoring
many trials cannot afford that. LPIPS_drift instead compares the *same* probe renders before and
after: num_probes latents z and yaws drawn exactly as FID samples are (one CPU generator seeded
with the probe seed, so they do not depend on device or batch size), rendered by G_s and by G_u
with the backend's sample render (psi = 1) and the *same* backbone noise and depth draws, then
averaged per-pair LPIPS. An unchanged generator scores exactly 0, and every difference is caused
by the weights unlearning changed. It is a proxy, not a paper metric: it sees how much the
generator changed, not whether the change is realistic. Must not import ray.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import DriftSpec
from guide_ray.metrics.fid import SampleRender
from guide_ray.utils.seeding import derive_seed

# x, y [B, 3, R, R] in [-1, 1] → [B] (models.nets.base.PerceptualDistance)
Perceptual = Callable[[Tensor, Tensor], Tensor]


def probe_latents(spec: DriftSpec, z_dim: int, camera: CameraConfig) -> tuple[Tensor, Tensor]:
    """z [n, z_dim] and yaw [n] (radians) of the probe set, on the CPU, from `spec.seed` alone."""
    rng = torch.Generator().manual_seed(spec.seed)
    z = torch.randn(spec.num_probes, z_dim, generator=rng)
    yaw = (torch.rand(spec.num_probes, generator=rng) * 2 - 1) * camera.yaw_range
    return z, yaw


@torch.no_grad()
def probe_renders(G: nn.Module, spec: DriftSpec, camera: CameraConfig, render: SampleRender,
                  device: torch.device | str, noise_mode: str) -> list[Tensor]:
    """The probe images of G, one [B, 3, R, R] tensor per batch of `spec.batch_size` (on `device`).

    Noise and depth draws come from a generator seeded from the probe seed only, identical for
    every G, so two generators with the same weights render the same images. G is rendered in eval
    mode and left in the mode it was in; the global RNG is not touched.
    """
    device = torch.device(device)
    z, yaw = probe_latents(spec, G.z_dim, camera)
    render_rng = torch.Generator(device).manual_seed(derive_seed(spec.seed, "lpips_drift:render"))
    was_training = G.training
    G.eval()
    try:
        return [render(G, z[i:i + spec.batch_size].to(device), yaw[i:i + spec.batch_size].to(device),
                       render_rng, noise_mode) for i in range(0, spec.num_probes, spec.batch_size)]
    finally:
        G.train(was_training)


@torch.no_grad()
def lpips_drift(before: list[Tensor], after: list[Tensor], perceptual: Perceptual) -> float:
    """Mean per-pair LPIPS of two probe render lists (same batching); 0 for identical renders."""
    if len(before) != len(after) or any(b.shape != a.shape for b, a in zip(before, after, strict=False)):
        raise ValueError("LPIPS_drift compares two renders of one probe set; their batches differ")
    distances = torch.cat([perceptual(b, a).flatten() for b, a in zip(before, after, strict=True)])
    return float(distances.double().mean())
