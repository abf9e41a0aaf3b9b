"""One GUIDE step on the tiny preset, measured from outside: loss parts, gradients and the RNG state after.

The fast-option and micro-batch tests compare two configurations on identical inputs: the same
perturbed G_u (so the generators differ, as mid-run), the same latents, camera and seed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.fast import step_switches
from guide_ray.guide.loop import trainable_parameters
from guide_ray.guide.sampling import StepLatents, sample_step_latents
from guide_ray.guide.step import accumulate_step
from guide_ray.guide.targets import ufo_target
from guide_ray.models.eg3d.camera import frontal_camera, yaw_pitch_cameras
from guide_ray.models.eg3d.presets import build_generator
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual
from guide_ray.world.shipped import load_world_generator, world_source


@dataclass
class StepRun:
    total: float
    parts: tuple[float, float, float, float]
    grads: list[torch.Tensor]
    rng_after: torch.Tensor


@dataclass
class Setup:
    G_s: torch.nn.Module
    G_u: torch.nn.Module
    latents: StepLatents
    c: torch.Tensor


def make_setup(cfg: GuideConfig, seed: int = 0, preset: str = "tiny") -> Setup:
    """G_s (the seeded `tiny` preset, or the shipped trained `world`), a perturbed copy G_u, one step's
    latents and camera, all from `seed`."""
    G_s = build_generator("tiny") if preset == "tiny" else load_world_generator(world_source(None))
    G_u = copy.deepcopy(G_s)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in G_u.backbone.synthesis.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    c_front = frontal_camera(1)
    w_u = G_s.mapping(torch.randn(1, G_s.z_dim, generator=gen), c_front)
    w_t = ufo_target(w_u, G_s.backbone.mapping.w_avg, cfg.d)
    latents = sample_step_latents(cfg, w_u, w_t, G_s, c_front, gen)
    c = yaw_pitch_cameras(torch.tensor([0.1]), math.pi / 2 - 0.2, (0, 0, 0.2), 2.7, 18.837)
    return Setup(G_s, G_u, latents, c)


def run_step(setup: Setup, cfg: GuideConfig, nets: LossNets | None = None, micro_batch: int | None = None,
             rng_seed: int = 1, *, fresh: bool = True) -> StepRun:
    """One step's forward + backward on a copy of setup.G_u (on setup.G_u itself if not `fresh`, for
    a G_u with patched methods, which a deep copy would leave bound to the original); nothing is stepped."""
    G_u = copy.deepcopy(setup.G_u) if fresh else setup.G_u
    params = trainable_parameters(G_u)
    G_u.train()
    nets = nets or LossNets(StandInPerceptual(), StandInIdentity())
    rng = torch.Generator(setup.c.device).manual_seed(rng_seed)
    with step_switches(G_u, setup.G_s, cfg):
        parts = accumulate_step(G_u, setup.G_s, setup.latents, setup.c, cfg, nets, rng,
                                micro_batch or len(setup.latents.w_src))
    grads = [p.grad.detach().cpu().clone() for p in params]
    return StepRun(parts.total, (parts.total, parts.local, parts.adj, parts.global_), grads, rng.get_state().cpu())


def grad_cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Cosine between two whole gradients (all parameters flattened together)."""
    x, y = torch.cat([g.flatten() for g in a]), torch.cat([g.flatten() for g in b])
    return float((x @ y) / (x.norm() * y.norm()))


def assert_grads_close(a: list[torch.Tensor], b: list[torch.Tensor], atol: float, rtol: float) -> None:
    for g_a, g_b in zip(a, b):
        torch.testing.assert_close(g_a, g_b, atol=atol, rtol=rtol)
