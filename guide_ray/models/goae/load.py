"""Strict loading of GOAE's released `encoder_FFHQ.pt` into `GOAEncoder`.

The official file is a plain `state_dict` (GOAE's `Net.set_encoder` and GUIDE's `unlearn.py` both
pass `torch.load(...)` straight to `load_state_dict`); no wrapped variant is published, so none is
accepted. Loading is `weights_only=True` (tensors only, no code), then `strict=True`. A mismatch
raises `WeightsInvalid` naming the keys, and the file's position-bias tables and shift masks must
equal the ones the model computes, so a checkpoint built for another window layout is refused.

This is the only GOAE module that touches files.
"""

from __future__ import annotations

import logging
import pickle
import re
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.goae.encoder import GOAEncoder

log = logging.getLogger(__name__)

ENCODER_FILENAME = "encoder_FFHQ.pt"
HOW_TO_GET = (
    "download encoder_FFHQ.pt (the GOAE FFHQ encoder) from the Google Drive folder linked in the "
    "jiangyzy/GOAE README (https://drive.google.com/drive/folders/12pTX5TKQcA8ElNW5jDkWURSPUyISggHs); "
    "GUIDE's README links a copy (https://drive.google.com/drive/folders/1tl7zLPZgwOpa6xWmRsjz7LMrysfSbh_8). "
    "Put it at this path; guide_ray never downloads weights"
)
_SHOW = 8  # keys listed per category in an error message
_DERIVED_BUFFERS = ("relative_coords_table", "relative_position_index", "attn_mask")


# What torch.load raises on corrupt, truncated or non-tensor files (found by fuzzing torch 2.14).
_MALFORMED = (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, IndexError, KeyError, struct.error)


def _reason(err: Exception) -> str:
    """One line of torch's multi-line refusal: the rejected global if named, else the first line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    lines = [line for line in lines if line]
    named = [line.split(" was not an allowed")[0] for line in lines if "Unsupported global" in line]
    return (named or lines or [""])[0][:200]


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """torch.load with weights_only=True; anything but a flat name → tensor mapping is refused."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except _MALFORMED as err:
        raise WeightsInvalid(f"{path}: not a readable weights-only torch file "
                             f"({type(err).__name__}: {_reason(err)})") from err
    if not isinstance(obj, Mapping):
        raise WeightsInvalid(f"{path}: expected a plain GOAEncoder state_dict, got {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise WeightsInvalid(f"{path}: expected a plain GOAEncoder state_dict (name → tensor), but "
                             f"{len(not_tensors)} entries are not tensors: {not_tensors[:_SHOW]}")
    return dict(obj)


def _listing(title: str, keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return f"{len(keys)} {title}: {', '.join(keys[:_SHOW])}{more}"


def check_state_dict(encoder: GOAEncoder, state_dict: Mapping[str, Tensor], path: Path) -> None:
    """Raise WeightsInvalid listing missing, unexpected and wrongly shaped keys (no partial loads)."""
    expected = encoder.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} {list(state_dict[k].shape)} != {list(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    parts = [_listing(t, ks) for t, ks in (("missing", missing), ("unexpected", unexpected),
                                            ("with the wrong shape", shapes)) if ks]
    hint = ""
    if unexpected and all(k.startswith("module.") for k in unexpected):
        hint = " (keys carry a DataParallel 'module.' prefix; save the unwrapped model's state_dict)"
    raise WeightsInvalid(f"{path} does not match GOAEncoder: {'; '.join(parts)}{hint}")


def _check_derived_buffers(encoder: GOAEncoder, state_dict: Mapping[str, Tensor], path: Path) -> None:
    """The file's window tables and masks must equal ours, else its window layout differs."""
    for name, ours in encoder.named_buffers():
        if name.rsplit(".", 1)[-1] in _DERIVED_BUFFERS:
            theirs = state_dict[name].to(ours.dtype)
            if not torch.allclose(theirs, ours, rtol=0.0, atol=1e-6):
                raise WeightsInvalid(f"{path}: buffer {name} differs from the one GOAE's window layout "
                                     "gives; the file was saved for another Swin configuration")


def load_goae_encoder(path: Path | str, device: torch.device | str = "cpu") -> GOAEncoder:
    """Build GOAE's FFHQ encoder and load `path` strictly; returned in eval mode on `device`.

    Raises WeightsMissing if the file does not exist, WeightsInvalid if it is not a weights-only
    torch file holding exactly GOAEncoder's 545 tensors with the right shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, HOW_TO_GET)
    state_dict = _read_state_dict(path)
    with torch.device("meta"):   # names and shapes only: refuse a bad file before allocating 445 MB
        check_state_dict(GOAEncoder(), state_dict, path)
    encoder = GOAEncoder()
    _check_derived_buffers(encoder, state_dict, path)
    encoder.load_state_dict(state_dict, strict=True)
    log.info("loaded GOAE encoder from %s (%d tensors)", path, len(state_dict))
    return encoder.to(device).eval()
