"""How many latents one forward/backward chunk may hold: `micro_batch: auto` resolved from free memory.

One GUIDE step renders 1 + N_a + N_g latents through G_u with autograd (backbone, renderer, SR,
LPIPS-VGG, IR-SE50). Its peak grows about linearly with the latents in one chunk, so the chunk
size is this actor's share of the free memory / per-latent cost, capped at the step's batch. The
share matters when several actors use one device: each measures the free memory when its first
identity starts, before its neighbours have allocated, so without it every actor would plan for
the whole device. The cost table holds what was
measured; anything else is extrapolated from the output resolution, which drives the SR and the
loss networks' activations. On the CPU host a chunk is also kept under CPU_CHUNK_GIB: there, past a
few GiB of activations, bigger chunks only cost memory and time (benchmarks/RESULTS.md, section 2).
No Ray, no files beyond /proc/meminfo.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from guide_ray.config.guide import GuideConfig

GIB = 2 ** 30
# GiB per latent of one fp32 step (G_u forward + backward through renderer and SR, LPIPS-VGG, IR-SE50),
# keyed by (output resolution, neural rendering resolution).
# (512, 128): EG3D ffhq512-128 on CPU, issue #11: G_u forward + backward 4.6 GB at batch 1, 8.2 GB at 2.
LATENT_COST_GIB: dict[tuple[int, int | None], float] = {(512, 128): 3.6}
GIB_PER_OUTPUT_MEGAPIXEL = 3.6 / (512 * 512 / 1e6)   # the measured row, per megapixel of output, for the rest
HEADROOM = 0.8       # use at most this share of the free memory (weights, G_s, allocator slack live there)
# The most GiB of activations one chunk is planned with on the CPU host. Measured on 2 cores (2026-12-01,
# benchmarks/RESULTS.md): on ffhq512-128 a chunk of 1 latent (3.6 GiB) ran the step at 1.07-1.16x the official-order
# reference in two runs, one of 2 at 0.92x (per image, its convolutions and ray marching run slower at batch 2: the
# activations outgrow the caches), the first step took 145 s with 4; the world (0.2 GiB per latent) runs
# one batch of 5 faster than chunks of 1 (0.57 vs 0.77 s).
CPU_CHUNK_GIB = 4.0


@dataclass(frozen=True)
class MicroBatchChoice:
    """The chunk size one run used and why (recorded with the result)."""

    micro_batch: int
    batch: int                     # latents per step, 1 + N_a + N_g
    source: str                    # "config" or "auto"
    free_gib: float | None = None  # free device / host memory at resolution time (auto only)
    latent_gib: float | None = None
    share: float = 1.0             # the share of free_gib this actor plans with (auto only)
    cap_gib: float | None = None   # the per-chunk cap it also obeyed (auto on the CPU host only)

    def record(self) -> dict[str, object]:
        return {"micro_batch": self.micro_batch, "batch": self.batch, "source": self.source,
                "free_gib": None if self.free_gib is None else round(self.free_gib, 2),
                "latent_gib": None if self.latent_gib is None else round(self.latent_gib, 3),
                "share": round(self.share, 4), "cap_gib": self.cap_gib}


def latent_cost_gib(G: torch.nn.Module) -> float:
    """Estimated GiB one latent adds to a step's peak on `G` (the table, else by output pixels)."""
    resolution = output_resolution(G)
    key = (resolution, getattr(G, "neural_rendering_resolution", None))
    if key in LATENT_COST_GIB:
        return LATENT_COST_GIB[key]
    return GIB_PER_OUTPUT_MEGAPIXEL * resolution * resolution / 1e6


def output_resolution(G: torch.nn.Module) -> int:
    """The generator's output size: EG3D's `img_resolution`, or a 2D decoder's `size` (StyleGAN2)."""
    for value in (getattr(G, "img_resolution", None), getattr(getattr(G, "decoder", None), "size", None)):
        if isinstance(value, int):
            return value
    raise ValueError(f"micro_batch 'auto': cannot tell {type(G).__name__}'s output resolution (no img_resolution "
                     "or decoder.size); set guide.micro_batch to a number")


def free_memory_gib(device: torch.device) -> float:
    """Free memory where the step runs: CUDA's free bytes, or the host's MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free / GIB
    return host_available_bytes() / GIB


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable from /proc/meminfo (Linux); the kernel's estimate of what can be used without swapping."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{meminfo} has no MemAvailable line; set guide.micro_batch to a number")


def memory_share(device: torch.device, gpus_per_actor: float, cpus_per_actor: float,
                 host_cpus: int | None = None) -> float:
    """The share of `device` one actor may plan with: its GPU fraction (Ray's gpus_per_actor, when below 1),
    or on the CPU host its CPUs over the host's (that many actors fit beside it)."""
    if device.type == "cuda":
        return gpus_per_actor if 0 < gpus_per_actor < 1 else 1.0
    cpus = host_cpus or os.cpu_count() or 1
    return min(1.0, cpus_per_actor / cpus)


def chunk_size(batch: int, free_gib: float, latent_gib: float, cap_gib: float | None = None) -> int:
    """The most latents of `latent_gib` each that fit HEADROOM × free_gib (and `cap_gib`), between 1 and `batch`."""
    budget = HEADROOM * free_gib if cap_gib is None else min(HEADROOM * free_gib, cap_gib)
    fits = math.floor(budget / latent_gib)
    return max(1, min(batch, fits))


def resolve_micro_batch(cfg: GuideConfig, G: torch.nn.Module, device: torch.device,
                        free_gib: float | None = None, share: float = 1.0) -> MicroBatchChoice:
    """cfg.micro_batch as a number: capped at the step's batch, or chosen for 'auto' from `share` (0, 1]
    of the free memory (memory_share: what this actor may plan with), on the CPU host at most CPU_CHUNK_GIB.

    `free_gib` overrides the measurement (tests, and callers that already measured).
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    batch = cfg.batch_size
    if cfg.micro_batch != "auto":
        return MicroBatchChoice(min(cfg.micro_batch, batch), batch, "config")
    free = free_memory_gib(device) if free_gib is None else free_gib
    cost = latent_cost_gib(G)
    cap = CPU_CHUNK_GIB if device.type == "cpu" else None
    return MicroBatchChoice(chunk_size(batch, share * free, cost, cap), batch, "auto", free, cost, share, cap)
