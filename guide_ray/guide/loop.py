"""The GUIDE unlearning loop (Local-Targeted Unlearning): plain PyTorch, no Ray, files or prints.

Only `G_u.synthesis_parameters()` train (EG3D: `backbone.synthesis`; 2D StyleGAN2: the synthesis
convolutions), with Adam on the raw equalised-lr weights; mapping, decoder, super-resolution and
every buffer stay bit-identical, though gradients flow through them. Any `UnlearnableGenerator`
(guide/generator.py) works.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.fast import resolve_autocast, step_switches, to_channels_last
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.losses import LossParts
from guide_ray.guide.memory import MicroBatchChoice, resolve_micro_batch
from guide_ray.guide.sampling import sample_step_latents, step_camera
from guide_ray.guide.step import accumulate_step
from guide_ray.guide.targets import make_target
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.nets.base import LossNets

StepHook = Callable[[int, LossParts], bool]  # return True to stop early


@dataclass
class UnlearnResult:
    w_u: Tensor                       # [1, L, C] source latent
    w_t: Tensor                       # [1, L, C] target latent
    losses: list[LossParts] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    micro_batch: MicroBatchChoice | None = None   # the chunk size the steps used (cfg.micro_batch resolved)
    autocast: str | None = None                   # the precision the steps used (cfg.speed.autocast resolved)


def trainable_parameters(G_u: UnlearnableGenerator) -> list[torch.nn.Parameter]:
    """Freeze everything, then unfreeze exactly the backend's synthesis parameters (by module, not name match)."""
    G_u.requires_grad_(False)
    params = G_u.synthesis_parameters()
    for p in params:
        p.requires_grad_(True)
    return params


def unlearn(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, w_u: Tensor, cfg: GuideConfig, nets: LossNets, *,
            rng: torch.Generator, on_step: StepHook | None = None, memory_share: float = 1.0) -> UnlearnResult:
    """Fine-tune G_u in place so that G_u renders w_u (and its neighbourhood) like G_s renders w_t.

    G_u: a copy of the pretrained generator, modified in place. G_s: the frozen original.
    w_u: [1, L, C] absolute W+ latent. rng: the only source of randomness (cameras, latents,
    noise, depth samples). memory_share: the share of the device's free memory this run may plan
    `micro_batch: auto` with (guide.memory.memory_share). Raises FloatingPointError if the loss
    becomes non-finite.
    """
    if G_u is G_s:
        raise ValueError("G_u must be a copy of G_s, not the same module")
    G_s.eval().requires_grad_(False)
    params = trainable_parameters(G_u)
    G_u.train()  # as the official loop: only switches modulated convs to the unfused path
    if cfg.speed.channels_last:
        to_channels_last(G_u, G_s, nets.perceptual, nets.identity)
    w_u = w_u.detach()
    w_avg = G_s.w_avg                                            # [C] (EG3D) or [L, C] (pSp)
    w_t = make_target(cfg, w_u, w_avg).detach()                  # [1, L, C]
    cam = cfg.camera                                             # the frontal pose conditions EG3D's mapping (2D ignores it)
    c_front = frontal_camera(1, cam.look_at_point, cam.radius, cam.fov_deg, w_u.device)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    result = UnlearnResult(w_u=w_u, w_t=w_t, micro_batch=resolve_micro_batch(cfg, G_u, w_u.device, share=memory_share),
                           autocast=resolve_autocast(cfg.speed, w_u.device))
    start = time.perf_counter()
    with step_switches(G_u, G_s, cfg):
        for step in range(cfg.iterations):
            c = step_camera(cfg.camera, rng, w_u.device)
            latents = sample_step_latents(cfg, w_u, w_t, G_s, c_front, rng)
            opt.zero_grad(set_to_none=True)
            parts = accumulate_step(G_u, G_s, latents, c, cfg, nets, rng, result.micro_batch.micro_batch)
            if not math.isfinite(parts.total):
                raise FloatingPointError(f"loss is {parts.total} at step {step}")
            opt.step()
            result.losses.append(parts)
            result.steps = step + 1
            if on_step is not None and on_step(step, parts):
                break
    G_u.eval()
    result.seconds = time.perf_counter() - start
    return result
