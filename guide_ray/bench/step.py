"""Step speed: our step (and each requested fast option) against the faithful official-order
reference step, same weights, seeds and cameras, alternating, plus a per-stage profile of one step.

Each variant owns its G_u and Adam; step i of every variant draws its camera and latents from a
generator seeded with (seed, i), so all variants see the same ones. The rounds alternate the
variants' order, so slow drift of a shared machine hits them alike. Read the ratios: absolute
times on shared CPUs are noisy.
"""

from __future__ import annotations

import contextlib
import copy
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from guide_ray.bench.world import StepWorld
from guide_ray.config.guide import GuideConfig
from guide_ray.guide.fast import cuda_flags, step_switches, to_channels_last
from guide_ray.guide.losses import guide_losses
from guide_ray.guide.memory import resolve_micro_batch
from guide_ray.guide.reference import reference_step
from guide_ray.guide.sampling import sample_step_latents, step_camera
from guide_ray.guide.step import accumulate_step, chunks

# name → the GuideConfig switches of that variant ("ours" = the defaults; "reference" = official order)
OPTIONS: dict[str, dict] = {
    "ours": {},
    "fp32": {"speed": {"autocast": "off"}},
    "sr-bf16": {"speed": {"autocast": "sr-bf16"}},
    "bf16": {"speed": {"autocast": "bf16"}},
    "tf32": {"speed": {"tf32": True}},
    "channels_last": {"speed": {"channels_last": True}},
    "compile": {"speed": {"compile": True}},
    "grad_checkpoint": {"grad_checkpoint": True},
    "no_inference_mode": {"speed": {"target_inference_mode": False}},
}
REFERENCE = "reference"
# the reference variants: the official one backward over the summed loss, and the same step with a backward
# per term (one term's graph alive at a time) for hosts where the official peak does not fit
REFERENCES: dict[str, str] = {REFERENCE: "sum", "reference-per-term": "per_term"}
STAGES = {"mapping": "backbone.mapping", "backbone": "backbone.synthesis", "renderer": "renderer",
          "SR": "superresolution"}


def option_config(name: str, base: GuideConfig | None = None) -> GuideConfig:
    """The GuideConfig of a named option: the defaults plus its switches, several joined by '+'
    (e.g. "bf16+channels_last"); a reference runs the defaults' losses in the official order."""
    if name in REFERENCES:
        return base or GuideConfig()
    merged = (base or GuideConfig()).model_dump()
    for part in name.split("+"):
        chunk = re.fullmatch(r"micro_batch=([1-9][0-9]*)", part)
        switches = {"micro_batch": int(chunk[1])} if chunk else OPTIONS.get(part)
        if switches is None:
            raise ValueError(f"unknown option {part!r} in {name!r}; choose from {', '.join([*REFERENCES, *OPTIONS])}, "
                             "micro_batch=K (join several with '+')")
        for key, value in switches.items():
            merged[key] = {**merged[key], **value} if isinstance(value, dict) else value
    return GuideConfig.model_validate(merged)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Variant:
    """One timed configuration with its own G_u, optimiser and switches (kept on while it lives)."""

    name: str
    cfg: GuideConfig
    run: Callable[[torch.Generator], float]
    times: list[float] = field(default_factory=list)
    micro_batch: int | None = None     # the resolved chunk size (None: a reference step, unchunked)
    G_u: torch.nn.Module | None = None
    losses: list[float] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def make_variant(world: StepWorld, name: str) -> Variant:
    cfg = option_config(name)
    G_u, opt = world.trainable_copy()
    G_s, device = world.G_s, world.device
    variant = Variant(name, cfg, run=lambda rng: 0.0, G_u=G_u)
    if cfg.speed.channels_last or cfg.speed.autocast != "off":
        G_s = copy.deepcopy(G_s)                      # its switches must not reach the other variants' G_s
    if cfg.speed.channels_last:
        to_channels_last(G_u, G_s)
    variant.stack.enter_context(step_switches(G_u, G_s, cfg))
    micro_batch = resolve_micro_batch(cfg, G_u, device).micro_batch
    variant.micro_batch = None if name in REFERENCES else micro_batch

    def run(rng: torch.Generator) -> float:
        c = step_camera(cfg.camera, rng, device)
        latents = sample_step_latents(cfg, world.w_u, world.w_t, G_s, world.c_front, rng)
        opt.zero_grad(set_to_none=True)
        if name in REFERENCES:
            loss = reference_step(G_u, G_s, latents, c, cfg, world.nets, rng, backward=REFERENCES[name])
        else:
            with cuda_flags(cfg.speed):
                loss = accumulate_step(G_u, G_s, latents, c, cfg, world.nets, rng, micro_batch).total
        opt.step()
        variant.losses.append(loss)
        return loss

    variant.run = run
    return variant


def time_variants(world: StepWorld, names: list[str], steps: int, seed: int = 0, warmup: int = 1) -> list[Variant]:
    """`warmup` untimed then `steps` timed steps of every variant, alternating the order per round."""
    variants = [make_variant(world, n) for n in names]
    try:
        for i in range(warmup + steps):
            order = variants if i % 2 == 0 else variants[::-1]
            for v in order:
                rng = torch.Generator(world.device).manual_seed(seed * 100_003 + i)
                _sync(world.device)
                start = time.perf_counter()
                v.run(rng)
                _sync(world.device)
                if i >= warmup:
                    v.times.append(time.perf_counter() - start)
    finally:
        for v in variants:
            v.stack.close()
    return variants


def summarize(variants: list[Variant], reference: str = REFERENCE) -> dict[str, dict[str, object]]:
    """Median seconds per step of each variant and its speed-up over `reference` (if timed)."""
    medians = {v.name: statistics.median(v.times) for v in variants}
    ref = medians.get(reference)
    return {name: {"median_s": round(m, 4), "times_s": [round(t, 4) for t in v.times],
                   "speedup_vs_reference": None if ref is None else round(ref / m, 3)}
            for (name, m), v in zip(medians.items(), variants)}


class StageTimer:
    """Forward seconds per stage from module hooks (synchronised on CUDA); nested calls are not double counted."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self._open = device, {}, {}
        self.handles = []

    def watch(self, stage: str, module: torch.nn.Module) -> None:
        def pre(mod, args):
            _sync(self.device)
            self._open[id(mod)] = time.perf_counter()

        def post(mod, args, out):
            _sync(self.device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self._open.pop(id(mod))

        self.handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def profile_step(world: StepWorld, seed: int = 0, cfg: GuideConfig | None = None) -> dict[str, float]:
    """Seconds per stage of one step of `cfg` (default: the defaults), in its chunks: mapping, backbone,
    renderer, SR, the loss networks, backward, optimiser, and `other` (sampling, loss arithmetic, hook
    overhead); `micro_batch` says which chunk size ran."""
    cfg = cfg or GuideConfig()
    G_u, opt = world.trainable_copy()
    micro_batch = resolve_micro_batch(cfg, G_u, world.device).micro_batch
    timer = StageTimer(world.device)
    for G in (G_u, world.G_s):
        for stage, path in STAGES.items():
            with contextlib.suppress(AttributeError):
                timer.watch(stage, G.get_submodule(path))
    for stage, net in (("LPIPS", world.nets.perceptual), ("ID net", world.nets.identity)):
        if isinstance(net, torch.nn.Module):
            timer.watch(stage, net)
    rng = torch.Generator(world.device).manual_seed(seed)
    try:
        with step_switches(G_u, world.G_s, cfg):       # the default precision, as the loop runs it
            for _ in range(2):                  # the first step warms allocators and caches; the second is timed
                timer.seconds.clear()
                backward = 0.0
                _sync(world.device)
                start = time.perf_counter()
                c = step_camera(cfg.camera, rng, world.device)
                latents = sample_step_latents(cfg, world.w_u, world.w_t, world.G_s, world.c_front, rng)
                opt.zero_grad(set_to_none=True)
                for part in chunks(latents, micro_batch):
                    loss, _ = guide_losses(G_u, world.G_s, part, c, cfg, world.nets, rng)
                    _sync(world.device)
                    t0 = time.perf_counter()
                    loss.backward()
                    _sync(world.device)
                    backward += time.perf_counter() - t0
                t1 = time.perf_counter()
                opt.step()
                _sync(world.device)
                t2 = time.perf_counter()
    finally:
        timer.close()
    stages = dict(timer.seconds, backward=backward, optimiser=t2 - t1)
    stages["other"] = max(0.0, (t2 - start) - sum(stages.values()))
    stages["total"] = t2 - start
    return {**{k: round(v, 4) for k, v in stages.items()}, "micro_batch": micro_batch}
