"""CUDA paths: FP16 super-resolution, the unlearning loop and seeded determinism on a GPU.

Marked `gpu`: skipped (and reported as skipped) where CUDA is unavailable, e.g. in CI.
"""

from __future__ import annotations

import copy

import pytest
import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.loop import unlearn
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.presets import build_generator
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual

pytestmark = pytest.mark.gpu


def _render(G, device):
    rng = torch.Generator(device).manual_seed(0)
    c = frontal_camera(2, device=device)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=rng, device=device), c)
        return G.synthesis(ws, c, noise_mode="const", generator=rng)


def test_superresolution_runs_fp16_on_cuda_and_fp32_on_cpu():
    G = build_generator("tiny")
    assert G.superresolution.block0.use_fp16                     # sr_num_fp16_res = 4
    dtypes = []
    G.superresolution.block0.conv1.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    cpu = _render(G, "cpu")["image"]
    gpu = _render(G.cuda(), "cuda")["image"]
    assert dtypes == [torch.float32, torch.float16]
    assert gpu.dtype == torch.float32 and torch.isfinite(gpu).all()
    # different noise/depth streams per device, so compare statistics, not pixels
    assert abs(gpu.mean().item() - cpu.mean().item()) < 0.1


def test_unlearning_on_cuda_is_seeded():
    nets = LossNets(StandInPerceptual().cuda(), StandInIdentity().cuda())
    runs = []
    for _ in range(2):
        G_s = build_generator("tiny").cuda()
        G_u = copy.deepcopy(G_s)
        rng = torch.Generator("cuda").manual_seed(3)
        w_u = G_s.mapping(torch.randn(1, G_s.z_dim, generator=rng, device="cuda"), frontal_camera(1, device="cuda"))
        result = unlearn(G_u, G_s, w_u, GuideConfig(iterations=3), nets, rng=rng)
        runs.append([p.total for p in result.losses])
    assert runs[0] == pytest.approx(runs[1], rel=1e-4)
    assert all(torch.isfinite(torch.tensor(r)).all() for r in runs)
