"""Load EG3D generators from official pickles, GUIDE's last.pkl and our own weights-only files.

Official EG3D snapshots (and GUIDE's `last.pkl`, which keeps only `G_ema`) are pickles that
execute embedded source on load. `read_eg3d_pickle` reads them through the allow-list
unpickler in `unpickler.py` and walks the recorded module tree, so the tensors come out under
the names `state_dict()` uses, without running anything from the file. `load_eg3d` builds
`TriPlaneGenerator(**init_kwargs)` and loads those tensors with strict=True. `convert_pickle`
writes our own format once, which `torch.load(weights_only=True)` can open (CHECKPOINTS.md).
"""

from __future__ import annotations

import copy
import logging
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.eg3d.unpickler import (
    ModuleStub,
    PersistentStub,
    torch_load_weights_only,
    unpickle_safely,
)
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.utils.files import atomic_file, file_sha256

log = logging.getLogger(__name__)

FORMAT_NAME = "guide_ray.eg3d"
FORMAT_VERSION = 1
NETWORKS = ("G_ema", "G")  # the generators a snapshot may hold; G_ema is the one to use
ROOT_CLASS = "TriPlaneGenerator"
HOW_TO_GET = (
    "the official EG3D FFHQ generator is ffhqrebalanced512-128.pkl from NVIDIA NGC "
    "(https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d); a GUIDE last.pkl "
    "comes from a GUIDE unlearning run (experiments/<exp>/checkpoints/last.pkl). Nothing is "
    "downloaded automatically; `guide-ray weights convert <file>.pkl` turns either into our format"
)
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) container
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # legacy torch.save: pickled magic int
_RECORD_FIELDS = ("init_args", "init_kwargs", "neural_rendering_resolution", "rendering_kwargs", "state_dict")


@dataclass(frozen=True)
class EG3DSnapshot:
    """The data of an EG3D network pickle, with no code from the file attached.

    `class_names` and `src_sha256` map a network ("G_ema", "G") to {module path: value}, "" being
    the root; persistent classes give a bare class name plus the hash of their embedded source,
    plain-pickled classes their import path (and no hash).
    """

    init_kwargs: dict[str, Any]  # TriPlaneGenerator constructor kwargs, EasyDicts turned into dicts
    init_args: list[Any]  # positional constructor args (empty for EG3D and GUIDE)
    neural_rendering_resolution: int  # pickled attribute: 128 for ffhq512-128, constructor default 64
    rendering_kwargs: dict[str, Any]  # the generator's rendering_kwargs attribute
    state_dicts: dict[str, dict[str, Tensor]]  # network → state_dict()-ordered tensors (CPU)
    class_names: dict[str, dict[str, str]]
    src_sha256: dict[str, dict[str, str]]
    file_sha256: str


@dataclass(frozen=True)
class _Network:
    """One generator walked out of the pickle."""

    init_args: list[Any]
    init_kwargs: dict[str, Any]
    neural_rendering_resolution: int
    rendering_kwargs: dict[str, Any]
    state_dict: dict[str, Tensor]
    class_names: dict[str, str]
    src_sha256: dict[str, str]


def _plain(value: Any) -> Any:
    """EasyDict / OrderedDict → dict, tuples → lists, recursively: JSON-like constructor kwargs."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _module_state(node: object, where: str) -> tuple[str, str | None, dict[str, Any]]:
    """(class name, source sha256 or None, pickled __dict__) of a recorded module."""
    if isinstance(node, PersistentStub):
        return node.class_name, node.src_sha256, node.state
    if isinstance(node, ModuleStub):
        return node.qualname, None, node.state
    raise WeightsInvalid(f"{where} is a {type(node).__name__}, not a pickled module")


def _named_tensors(table: object, where: str, skip: set[str]) -> list[tuple[str, Tensor]]:
    if not isinstance(table, Mapping):
        raise WeightsInvalid(f"{where} is a {type(table).__name__}, not a name → tensor table")
    found = []
    for name, value in table.items():
        if value is None or name in skip:  # state_dict() skips unset entries and non-persistent buffers
            continue
        if not isinstance(value, Tensor):
            raise WeightsInvalid(f"{where}[{name!r}] is a {type(value).__name__}, not a tensor")
        found.append((name, value.detach()))
    return found


def _walk(node: object, prefix: str, out: _Network) -> None:
    """Fill out.state_dict in nn.Module.state_dict() order: own params, own buffers, children."""
    where = prefix.rstrip(".") or "<root>"
    class_name, src_sha, state = _module_state(node, where)
    out.class_names[prefix.rstrip(".")] = class_name
    if src_sha is not None:
        out.src_sha256[prefix.rstrip(".")] = src_sha
    for field in ("_parameters", "_buffers", "_modules"):
        if field not in state:
            raise WeightsInvalid(f"{where} ({class_name}) has no {field}: not a torch module")
    non_persistent = set(state.get("_non_persistent_buffers_set", ()))
    for name, tensor in _named_tensors(state["_parameters"], f"{where}._parameters", set()):
        out.state_dict[prefix + name] = tensor
    for name, tensor in _named_tensors(state["_buffers"], f"{where}._buffers", non_persistent):
        out.state_dict[prefix + name] = tensor
    children = state["_modules"]
    if not isinstance(children, Mapping):
        raise WeightsInvalid(f"{where}._modules is a {type(children).__name__}, not a table")
    for name, child in children.items():
        if child is not None:
            _walk(child, f"{prefix}{name}.", out)


def _resolution(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise WeightsInvalid(f"{where}.neural_rendering_resolution is {value!r}, not a positive int")
    return int(value)


def _read_network(root: object, which: str, path: Path) -> _Network:
    """Walk one generator; its root must be the persistent TriPlaneGenerator."""
    if not isinstance(root, PersistentStub) or root.class_name != ROOT_CLASS:
        got = root.class_name if isinstance(root, PersistentStub) else type(root).__name__
        raise WeightsInvalid(f"{path}: {which} is {got}, expected a persistent {ROOT_CLASS}")
    state = root.state
    missing = [k for k in ("_init_args", "_init_kwargs", "neural_rendering_resolution", "rendering_kwargs")
               if k not in state]
    if missing:
        raise WeightsInvalid(f"{path}: {which} lacks {', '.join(missing)}")
    if not isinstance(state["_init_kwargs"], Mapping) or not isinstance(state["rendering_kwargs"], Mapping):
        raise WeightsInvalid(f"{path}: {which}._init_kwargs / rendering_kwargs are not dicts")
    net = _Network(init_args=_plain(state["_init_args"]), init_kwargs=_plain(state["_init_kwargs"]),
                   neural_rendering_resolution=_resolution(state["neural_rendering_resolution"], f"{path}: {which}"),
                   rendering_kwargs=_plain(state["rendering_kwargs"]),
                   state_dict={}, class_names={}, src_sha256={})
    _walk(root, "", net)
    return net


def _require_file(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, how_to_get=HOW_TO_GET)
    return path


def read_eg3d_pickle(path: Path | str) -> EG3DSnapshot:
    """Read an official EG3D snapshot or GUIDE last.pkl without executing anything from it.

    Raises WeightsMissing (no file), UnsafeCheckpoint (a global off the allow-list, refused
    before it is built) or WeightsInvalid (not an EG3D generator pickle).
    """
    path = _require_file(path)
    data = unpickle_safely(path)
    if not isinstance(data, Mapping) or data.get("G_ema") is None:
        raise WeightsInvalid(f"{path}: expected a network pickle dict with 'G_ema'")
    nets = {which: _read_network(data[which], which, path) for which in NETWORKS if data.get(which) is not None}
    ema = nets["G_ema"]
    for which, net in nets.items():
        same = (net.init_args, net.init_kwargs, net.neural_rendering_resolution, net.rendering_kwargs)
        if same != (ema.init_args, ema.init_kwargs, ema.neural_rendering_resolution, ema.rendering_kwargs):
            raise WeightsInvalid(f"{path}: {which} and G_ema were built with different settings")
    return EG3DSnapshot(
        init_kwargs=ema.init_kwargs, init_args=ema.init_args,
        neural_rendering_resolution=ema.neural_rendering_resolution, rendering_kwargs=ema.rendering_kwargs,
        state_dicts={w: n.state_dict for w, n in nets.items()},
        class_names={w: n.class_names for w, n in nets.items()},
        src_sha256={w: n.src_sha256 for w, n in nets.items()},
        file_sha256=file_sha256(path),
    )


def _is_torch_file(path: Path) -> bool:
    """torch.save output (zip or legacy) vs a plain pickle, decided by content, not extension."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_TORCH_MAGIC))
    if head.startswith(_ZIP_MAGIC) or head == _LEGACY_TORCH_MAGIC:
        return True
    if head.startswith(b"\x80"):  # pickle PROTO opcode
        return False
    raise WeightsInvalid(f"{path} is neither a torch.save file nor a pickle (starts with {head[:4]!r})")


def _read_own_format(path: Path) -> dict[str, Any]:
    """Our format, through torch's weights-only unpickler (its refusals become UnsafeCheckpoint)."""
    with open(path, "rb") as f:
        record = torch_load_weights_only(f, path)
    if not isinstance(record, dict) or record.get("format") != FORMAT_NAME:
        raise WeightsInvalid(f"{path}: a torch file, but not a {FORMAT_NAME} generator")
    if record.get("version") != FORMAT_VERSION:
        raise WeightsInvalid(f"{path}: {FORMAT_NAME} version {record.get('version')!r}, "
                             f"this code reads version {FORMAT_VERSION}")
    missing = sorted(set(_RECORD_FIELDS) - set(record))
    if missing:
        raise WeightsInvalid(f"{path}: lacks {', '.join(missing)}")
    _named_tensors(record["state_dict"], f"{path}: state_dict", set())  # all values must be tensors
    _resolution(record["neural_rendering_resolution"], str(path))
    if not isinstance(record["init_kwargs"], dict) or not isinstance(record["rendering_kwargs"], dict):
        raise WeightsInvalid(f"{path}: init_kwargs / rendering_kwargs are not dicts")
    return record


def _record(init_args: list[Any], init_kwargs: dict[str, Any], neural_rendering_resolution: int,
            rendering_kwargs: dict[str, Any], state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Our on-disk dict: plain Python values and CPU tensors only, so weights_only=True can read it."""
    return {
        "format": FORMAT_NAME, "version": FORMAT_VERSION,
        "init_args": _plain(init_args), "init_kwargs": _plain(init_kwargs),
        "neural_rendering_resolution": int(neural_rendering_resolution),
        "rendering_kwargs": _plain(rendering_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }


def _save_atomically(record: dict[str, Any], path: Path | str) -> Path:
    """torch.save to a temp file beside `path`, then os.replace: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        torch.save(record, tmp)
    return path


def _check_state_dict(expected: Mapping[str, Tensor], found: Mapping[str, Tensor], path: Path) -> None:
    """Name every missing, unexpected and mis-shaped tensor (first few) instead of torch's wall of text."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {list(found[k].shape)} vs {list(t.shape)}" for k, t in expected.items()
              if k in found and found[k].shape != t.shape]
    problems = [f"{len(items)} {what} ({', '.join(items[:4])}{', ...' if len(items) > 4 else ''})"
                for what, items in (("missing", missing), ("unexpected", unexpected),
                                    ("shape mismatches, file vs model:", shapes)) if items]
    if problems:
        raise WeightsInvalid(f"{path}: tensors do not fit TriPlaneGenerator(**init_kwargs): {'; '.join(problems)}")


def _build(record: Mapping[str, Any], path: Path) -> TriPlaneGenerator:
    """TriPlaneGenerator(*init_args, **init_kwargs) + pickled attributes + strict state_dict load."""
    try:
        G = TriPlaneGenerator(*copy.deepcopy(record["init_args"]), **copy.deepcopy(record["init_kwargs"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise WeightsInvalid(f"{path}: TriPlaneGenerator rejects the stored init_kwargs: {exc!r}") from None
    G.neural_rendering_resolution = record["neural_rendering_resolution"]  # not in the state_dict
    G.rendering_kwargs = record["rendering_kwargs"]
    _check_state_dict(G.state_dict(), record["state_dict"], path)
    G.load_state_dict(record["state_dict"], strict=True)
    G.init_args, G.init_kwargs = record["init_args"], record["init_kwargs"]  # what save_eg3d writes back
    return G


def load_eg3d(path: Path | str, *, device: str | torch.device = "cpu", which: str = "G_ema") -> TriPlaneGenerator:
    """An EG3D generator from an official .pkl, GUIDE's last.pkl or our own format, in eval mode, frozen.

    The format is told by content, not extension. `which` picks "G_ema" (the network to use)
    or "G" in official snapshots; our files hold a single generator. Raises WeightsMissing,
    UnsafeCheckpoint or WeightsInvalid (unreadable, or tensors that do not fit, with names).
    """
    if which not in NETWORKS:
        raise ValueError(f"which must be one of {NETWORKS}, got {which!r}")
    path = _require_file(path)
    if _is_torch_file(path):
        if which != "G_ema":
            raise WeightsInvalid(f"{path}: a {FORMAT_NAME} file holds one generator; which={which!r} "
                                 "only applies to official snapshot pickles")
        record = _read_own_format(path)
    else:
        snap = read_eg3d_pickle(path)
        if which not in snap.state_dicts:
            raise WeightsInvalid(f"{path} holds no {which} (it has {', '.join(snap.state_dicts)})")
        record = _record(snap.init_args, snap.init_kwargs, snap.neural_rendering_resolution,
                         snap.rendering_kwargs, snap.state_dicts[which])
    G = _build(record, path)
    log.info("loaded EG3D %s from %s (%d tensors, neural_rendering_resolution %d)",
             which, path, len(record["state_dict"]), G.neural_rendering_resolution)
    return G.to(device).eval().requires_grad_(False)


def save_eg3d(G: TriPlaneGenerator, path: Path | str) -> Path:
    """Write G in our weights-only format (atomic), with what its state_dict lacks
    (constructor kwargs, neural_rendering_resolution, rendering_kwargs)."""
    record = _record(list(getattr(G, "init_args", [])), dict(G.init_kwargs), G.neural_rendering_resolution,
                     G.rendering_kwargs, G.state_dict())
    return _save_atomically(record, path)


def convert_pickle(pkl_path: Path | str, out_path: Path | str) -> Path:
    """Official snapshot / GUIDE last.pkl → our format (G_ema only), without building the model."""
    snap = read_eg3d_pickle(pkl_path)
    record = _record(snap.init_args, snap.init_kwargs, snap.neural_rendering_resolution,
                     snap.rendering_kwargs, snap.state_dicts["G_ema"])
    out = _save_atomically(record, out_path)
    log.info("converted %s (sha256 %s) to %s", pkl_path, snap.file_sha256, out)
    return out
