"""The step's speed and memory switches (GuideConfig.speed, GuideConfig.grad_checkpoint) as context managers.

Each one changes how a step is computed, never what: tests/guide/test_fast_options.py holds every
switch against the plain fp32 step on the same inputs. Switches that patch a module do it for the
duration of a `with` block only, so a deep copy of G_u taken later (artifacts, metrics) is plain.
`cuda_flags` flips process-wide torch.backends flags, so only callers (the pipeline, the
benchmarks) use it, never the loop (docs/design.md: the core sets no global flags).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from guide_ray.config.guide import GuideConfig, SpeedConfig

CHECKPOINTED = ("renderer", "superresolution")   # EG3D's activation-heavy stages behind the tri-planes


@contextlib.contextmanager
def patched(obj: object, name: str, value: object) -> Iterator[None]:
    """Set obj.name = value (an instance attribute) for the block, then remove it again."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _replayable(forward: Callable) -> Callable:
    """`forward` under activation checkpointing, with its `generator=` draws replayed in backward.

    torch.utils.checkpoint restores the global RNG only; the renderer draws its depth jitter from
    the caller's torch.Generator. The first run draws from a clone of that generator's state and
    then moves the caller's generator to where the clone ended; the recomputation in backward
    draws from another clone of the same start state, so both runs see the same samples and the
    stream after the step is the one an unchecked run leaves.
    """
    def run(*args, generator: torch.Generator | None = None, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, generator=generator, **kwargs)
        start = None if generator is None else generator.get_state()
        used: list[torch.Generator] = []

        def body(*tensors):
            if generator is None:
                return forward(*tensors, generator=None, **kwargs)
            replay = torch.Generator(device=generator.device)
            replay.set_state(start)
            used.append(replay)
            return forward(*tensors, generator=replay, **kwargs)

        out = checkpoint(body, *args, use_reentrant=False, preserve_rng_state=True)
        if generator is not None:
            generator.set_state(used[0].get_state())
        return out
    return run


@contextlib.contextmanager
def grad_checkpointing(G: nn.Module, *, enabled: bool) -> Iterator[None]:
    """Checkpoint G's renderer and super-resolution (the modules it has of CHECKPOINTED) in the block."""
    if not enabled:
        yield
        return
    modules = [getattr(G, name) for name in CHECKPOINTED if isinstance(getattr(G, name, None), nn.Module)]
    if not modules:
        raise ValueError(f"grad_checkpoint: {type(G).__name__} has none of {', '.join(CHECKPOINTED)} to checkpoint")
    with contextlib.ExitStack() as stack:
        for module in modules:
            stack.enter_context(patched(module, "forward", _replayable(module.forward)))
        yield


@contextlib.contextmanager
def compiled_synthesis(G: nn.Module, *, enabled: bool) -> Iterator[None]:
    """torch.compile(G.synthesis) for the block (the first call compiles; later ones reuse it)."""
    if not enabled:
        yield
        return
    with patched(G, "synthesis", torch.compile(G.synthesis)):
        yield


def _as_fp32(out: object) -> object:
    """Floating tensors (alone or as a dict's values) back to float32, so everything downstream is fp32."""
    if isinstance(out, dict):
        return {k: _as_fp32(v) for k, v in out.items()}
    return out.float() if isinstance(out, torch.Tensor) and out.is_floating_point() else out


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in hardware: CUDA's bf16 support, or a CPU with AVX512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(check() for check in checks if check is not None)
    return False


def resolve_autocast(speed: SpeedConfig, device: torch.device) -> str:
    """speed.autocast with 'auto' decided for `device`: 'sr-bf16' where bf16 is native, else 'off'."""
    if speed.autocast != "auto":
        return speed.autocast
    return "sr-bf16" if native_bf16(device) else "off"


@contextlib.contextmanager
def reduced_precision(G: nn.Module, speed: SpeedConfig) -> Iterator[None]:
    """bf16 autocast of one stage of G for the block, its outputs handed on in fp32.

    speed.autocast (after resolve_autocast) 'sr-bf16': the super-resolution network only (the stage EG3D itself runs in
    reduced precision on CUDA, `sr_num_fp16_res`); 'bf16': G's whole synthesis (backbone, renderer,
    SR). The losses and loss networks stay fp32 either way. A generator without a
    `superresolution` module (2D StyleGAN2) has no stage for 'sr-bf16' and runs in fp32.
    """
    device = next(G.parameters()).device
    mode = resolve_autocast(speed, device)
    if mode == "off":
        yield
        return
    if mode == "bf16":
        owner, name = G, "synthesis"
    else:
        owner, name = getattr(G, "superresolution", None), "forward"
        if not isinstance(owner, nn.Module):
            yield
            return
    inner = getattr(owner, name)

    def run(*args, **kwargs):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            return _as_fp32(inner(*args, **kwargs))

    with patched(owner, name, run):
        yield


@contextlib.contextmanager
def step_switches(G_u: nn.Module, G_s: nn.Module, cfg: GuideConfig) -> Iterator[None]:
    """Every module-patching switch of cfg for the block, in one order: G_u's checkpointing, both
    generators' reduced precision, then G_u's compile (which so compiles the patched stages)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(grad_checkpointing(G_u, enabled=cfg.grad_checkpoint))
        for G in (G_u, G_s):
            stack.enter_context(reduced_precision(G, cfg.speed))
        stack.enter_context(compiled_synthesis(G_u, enabled=cfg.speed.compile))
        yield


def target_context(speed: SpeedConfig) -> contextlib.AbstractContextManager:
    """Where G_s renders its targets: inference_mode (no version counters, no graph), or no_grad."""
    return torch.inference_mode() if speed.target_inference_mode else torch.no_grad()


def to_channels_last(*modules: object) -> None:
    """NHWC weights for every nn.Module given (others, such as plain loss-net callables, are skipped)."""
    for module in modules:
        if isinstance(module, nn.Module):
            module.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def cuda_flags(speed: SpeedConfig) -> Iterator[None]:
    """TF32 matmuls and cuDNN convolutions inside the block when speed.tf32, restored afterwards."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if speed.tf32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
