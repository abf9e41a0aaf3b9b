"""Reading pSp's released `psp_ffhq_encode.pt` into a `GradualStyleEncoder` and a StyleGAN2 decoder.

The file is `{"state_dict": pSp.state_dict(), "opts": vars(opts), "latent_avg": [18, 512]}`
(pixel2style2pixel training/coach.py). It is read with `torch.load(weights_only=True)`; only if
`opts` was saved as an `argparse.Namespace` is that one class added to torch's allow-list (it
carries only attributes, no code). The state_dict is split by its `encoder.` / `decoder.` prefix
and each part is checked by name and shape on the meta device, then loaded with strict=True.
Only the architecture keys of `opts` are read, with the defaults pSp's own inference script
applies to the released files (output_size 1024, learn_in_w False). This is the only pSp module
that touches files.
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.psp.encoder import GradualStyleEncoder
from guide_ray.models.stylegan2.model import Generator
from guide_ray.models.stylegan2.presets import FFHQ1024, StyleGAN2Preset
from guide_ray.models.weights import PSP_FFHQ_ENCODE

log = logging.getLogger(__name__)

TOP_LEVEL_KEYS = ("state_dict", "opts", "latent_avg")
PARTS = ("encoder", "decoder")
# Architecture keys of opts and the value assumed when the file lacks them (pSp's inference
# script fills output_size and learn_in_w; the released files predate both options).
ARCH_DEFAULTS: dict[str, object] = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": 1024,
                                    "learn_in_w": False, "start_from_latent_avg": True}
_MALFORMED = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, IndexError, KeyError, struct.error)
_SHOW = 8


@dataclass(frozen=True)
class PspArch:
    """The architecture a pSp checkpoint was trained with (from its opts, defaults filled)."""

    encoder_type: str
    input_nc: int
    output_size: int
    learn_in_w: bool
    start_from_latent_avg: bool

    @property
    def n_styles(self) -> int:
        return int(math.log2(self.output_size)) * 2 - 2     # pSp.__init__ sets opts.n_styles so


@dataclass
class PspNetworks:
    """pSp's two networks and its mean latent; `invert` is pSp's forward up to the decoder."""

    encoder: GradualStyleEncoder
    decoder: Generator
    latent_avg: Tensor        # [n_styles, style_dim], every row used as stored
    arch: PspArch

    def invert(self, x: Tensor) -> Tensor:
        """x: [B, 3, 256, 256] aligned faces in [-1, 1] → W+ codes [B, n_styles, style_dim]."""
        return psp_invert(self.encoder, self.latent_avg if self.arch.start_from_latent_avg else None, x)


def psp_invert(encoder: GradualStyleEncoder, latent_avg: Tensor | None, x: Tensor) -> Tensor:
    """w = E(x) + latent_avg (all rows), decoded by pSp with input_is_latent=True."""
    codes = encoder(x)                                       # [B, n_styles, C]
    return codes if latent_avg is None else codes + latent_avg.to(codes)


def load_psp(path: Path | str, *, preset: StyleGAN2Preset = FFHQ1024,
             device: torch.device | str = "cpu") -> PspNetworks:
    """Build pSp's encoder and decoder for `preset` and load `path` strictly; eval, frozen, on `device`.

    Raises WeightsMissing if the file is absent; WeightsInvalid (naming the file and the offending
    keys or opts field) if it is not a weights-only pSp checkpoint of that architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, PSP_FFHQ_ENCODE.how_to_get)
    ckpt = read_checkpoint(path)
    arch = read_arch(ckpt["opts"], path, preset)
    parts = split_state_dict(ckpt["state_dict"], path)
    builders = {"encoder": lambda: GradualStyleEncoder(50, "ir_se", arch.n_styles, arch.input_nc,
                                                       widths=preset.encoder_widths),
                "decoder": preset.build}
    for name in PARTS:
        with torch.device("meta"):                           # names and shapes first, no allocation
            check_state_dict(builders[name](), parts[name], path, name)
    latent_avg = _latent_avg(ckpt["latent_avg"], arch, preset, path)
    nets = {}
    for name in PARTS:
        module = builders[name]()
        module.load_state_dict(parts[name], strict=True)
        nets[name] = module.to(device).eval().requires_grad_(False)
    log.info("loaded pSp from %s (%d encoder + %d decoder tensors)", path, len(parts["encoder"]), len(parts["decoder"]))
    return PspNetworks(nets["encoder"], nets["decoder"], latent_avg.to(device), arch)


def read_checkpoint(path: Path) -> dict[str, object]:
    """The checkpoint dict, read without executing code; opts returned as a plain dict."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        if "argparse.Namespace" not in str(err):
            raise WeightsInvalid(f"{path}: not a readable weights-only pSp checkpoint ({_first_line(err)})") from err
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except _MALFORMED as err:
        raise WeightsInvalid(f"{path}: not a readable weights-only pSp checkpoint ({_first_line(err)})") from err
    if not isinstance(obj, Mapping) or any(k not in obj for k in TOP_LEVEL_KEYS):
        keys = sorted(obj) if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsInvalid(f"{path}: expected a pSp checkpoint with top-level keys {list(TOP_LEVEL_KEYS)}, "
                             f"got {keys}")
    opts = obj["opts"]
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    if not isinstance(opts, Mapping):
        raise WeightsInvalid(f"{path}: 'opts' must be a dict of training options, got {type(opts).__name__}")
    return {**obj, "opts": dict(opts)}


def read_arch(opts: Mapping[str, object], path: Path, preset: StyleGAN2Preset) -> PspArch:
    """The architecture keys of opts (defaults filled); refuses what this build cannot load."""
    arch = PspArch(**{k: opts[k] if k in opts else default for k, default in ARCH_DEFAULTS.items()})
    if arch.encoder_type != "GradualStyleEncoder":
        raise WeightsInvalid(f"{path}: opts.encoder_type is {arch.encoder_type!r}; "
                             "only GradualStyleEncoder is supported")
    if arch.learn_in_w:
        raise WeightsInvalid(f"{path}: opts.learn_in_w is true (a single-W encoder); only W+ (false) is supported")
    if arch.output_size != preset.size:
        raise WeightsInvalid(f"{path}: opts.output_size is {arch.output_size}, "
                             f"the decoder preset renders {preset.size}")
    if "n_styles" in opts and opts["n_styles"] != arch.n_styles:
        raise WeightsInvalid(f"{path}: opts.n_styles is {opts['n_styles']}, but output_size {arch.output_size} "
                             f"needs {arch.n_styles}")
    return arch


def split_state_dict(state_dict: object, path: Path) -> dict[str, dict[str, Tensor]]:
    """{"encoder": ..., "decoder": ...} with the prefixes stripped; any other key is refused."""
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise WeightsInvalid(f"{path}: 'state_dict' must map names to tensors")
    parts: dict[str, dict[str, Tensor]] = {name: {} for name in PARTS}
    stray = []
    for key, value in state_dict.items():
        prefix, _, rest = key.partition(".")
        if prefix in parts and rest:
            parts[prefix][rest] = value
        else:
            stray.append(key)
    if stray:
        raise WeightsInvalid(f"{path}: {_listing('keys outside encoder.*/decoder.*', stray)}")
    return parts


def check_state_dict(module: nn.Module, state: Mapping[str, Tensor], path: Path, part: str) -> None:
    """Raise WeightsInvalid listing missing, unexpected and wrongly shaped `part.` keys."""
    expected = module.state_dict()
    missing = [f"{part}.{k}" for k in expected if k not in state]
    unexpected = [f"{part}.{k}" for k in state if k not in expected]
    shapes = [f"{part}.{k} {list(state[k].shape)} != {list(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [_listing(title, keys) for title, keys in
                (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", shapes)) if keys]
    if problems:
        raise WeightsInvalid(f"{path} does not match pSp's {part} ({type(module).__name__}): {'; '.join(problems)}")


def _latent_avg(value: object, arch: PspArch, preset: StyleGAN2Preset, path: Path) -> Tensor:
    want = [arch.n_styles, preset.style_dim]
    if not isinstance(value, Tensor) or list(value.shape) != want:
        got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise WeightsInvalid(f"{path}: 'latent_avg' must be a {want} tensor, got {got}")
    return value.float()


def _listing(title: str, keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return f"{len(keys)} {title}: {', '.join(keys[:_SHOW])}{more}"


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {(lines or [''])[0][:200]}"
