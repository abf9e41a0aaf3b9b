"""One GUIDE step's forward and backward over the step's latents, in chunks of `micro_batch`.

GUIDE's objective is a sum of per-latent terms (local, adjacency, global: guide/losses.py), so
rendering the 1 + N_a + N_g latents in chunks and calling backward once per chunk accumulates
exactly the gradient of the whole sum, while only one chunk's activations are alive at a time.
The rows keep their order [local, adjacency, global], so every chunk is a valid StepLatents.
With micro_batch >= the step's batch this is the one-batch step, random draws included; smaller
chunks draw the same distributions in chunk order (the seed and the recorded micro_batch
reproduce a run). No Ray, files or prints.
"""

from __future__ import annotations

import torch
from torch import Tensor

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.losses import LossParts, guide_losses
from guide_ray.guide.sampling import StepLatents
from guide_ray.models.nets.base import LossNets


def chunks(latents: StepLatents, micro_batch: int) -> list[StepLatents]:
    """Split the step's rows into consecutive chunks of at most `micro_batch` rows, counts per kind kept."""
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
    bounds = [0, latents.n_local, latents.n_local + latents.n_adj, len(latents.w_src)]
    out = []
    for start in range(0, len(latents.w_src), micro_batch):
        stop = min(start + micro_batch, len(latents.w_src))
        n_local, n_adj, n_global = (max(0, min(stop, hi) - max(start, lo)) for lo, hi in zip(bounds, bounds[1:]))
        out.append(StepLatents(latents.w_src[start:stop], latents.w_tgt[start:stop], n_local, n_adj, n_global))
    return out


def accumulate_step(G_u: UnlearnableGenerator, G_s: UnlearnableGenerator, latents: StepLatents, c: Tensor,
                    cfg: GuideConfig, nets: LossNets, rng: torch.Generator, micro_batch: int) -> LossParts:
    """Forward and backward of one step, chunk by chunk; G_u's .grad holds the whole step's gradient.

    The caller zeroes the gradients before and steps the optimiser after. c: the step's camera [1, 25].
    Returns the step's loss parts (sums over the chunks), read before any optimiser step.
    """
    sums = torch.zeros(4, dtype=torch.float64)
    for part in chunks(latents, micro_batch):
        loss, parts = guide_losses(G_u, G_s, part, c, cfg, nets, rng)
        loss.backward()
        sums += torch.tensor([parts.total, parts.local, parts.adj, parts.global_], dtype=torch.float64)
    return LossParts(*sums.tolist())
