"""A deny-by-default unpickler for EG3D network pickles that never runs code from the file.

Official EG3D `.pkl` files are plain pickles in which every persistent module carries its own
Python source, and the official loader `exec`s that source. Loading such a file by the usual
route runs whatever code the file contains. This module reads the same bytes with a
`pickle.Unpickler` whose `find_class` only knows an explicit allow-list:

* the persistence hook becomes `PersistentStub` (class name, sha256 of the embedded source and
  the pickled `__dict__`); the source is hashed, never compiled;
* plain-pickled module classes (`OSGDecoder`, the renderer parts, `torch.nn` containers) become
  `ModuleStub` subclasses that just keep their `__dict__`;
* `EasyDict` becomes a dict; tensors and numpy scalars use the real rebuild helpers, with their
  arguments checked; storages are read with `torch.load(..., weights_only=True)`.

Every other global raises `UnsafeCheckpoint` from `find_class`, before anything is built.
See CHECKPOINTS.md beside this file for the format and the reasons behind each entry.
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
import torch._utils

from guide_ray.errors import UnsafeCheckpoint, WeightsInvalid

PERSISTENCE_VERSION = 6  # torch_utils.persistence format of every EG3D / StyleGAN3-era pickle


@dataclass(frozen=True)
class PersistentStub:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have rebuilt."""

    class_name: str  # e.g. "TriPlaneGenerator"; the embedded source is not trusted to define it
    src_sha256: str  # sha256 of the embedded module source (utf-8), for provenance only
    state: dict[str, Any]  # the module's pickled __dict__ (_parameters, _buffers, _modules, ...)


class ModuleStub:
    """A plain-pickled module (no embedded source): pickle calls __new__, then __setstate__."""

    qualname: ClassVar[str] = ""  # "training.triplane.OSGDecoder", set on each generated subclass
    state: dict[str, Any]

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise WeightsInvalid(f"{self.qualname}: expected a module __dict__, got {type(state).__name__}")
        self.state = state


class EasyDict(dict):
    """Stands in for `dnnlib.util.EasyDict`; only its items matter (kwargs such as rendering_kwargs)."""

    def __setstate__(self, state: object) -> None:
        # A real EasyDict keeps everything in its items, so a pickled one carries no extra state.
        if state:
            raise WeightsInvalid("dnnlib.util.EasyDict carries unexpected attribute state")


def _reconstruct_persistent_obj(meta: object) -> PersistentStub:
    """Record a persistent object from its meta dict; the embedded source is hashed, never run."""
    if not isinstance(meta, dict):
        raise WeightsInvalid(f"persistent-object meta is a {type(meta).__name__}, expected a dict")
    fields = {"type", "version", "module_src", "class_name", "state"}
    if set(meta) != fields:
        raise WeightsInvalid(f"persistent-object meta has keys {sorted(meta)}, expected {sorted(fields)}")
    if meta["type"] != "class" or meta["version"] != PERSISTENCE_VERSION:
        raise WeightsInvalid(
            f"unsupported persistent object type={meta['type']!r} version={meta['version']!r} "
            f"(EG3D writes type='class' version={PERSISTENCE_VERSION})"
        )
    src, class_name, state = meta["module_src"], meta["class_name"], meta["state"]
    if not isinstance(src, str) or not isinstance(class_name, str) or not isinstance(state, dict):
        raise WeightsInvalid(f"malformed persistent object {class_name!r}")
    return PersistentStub(class_name, hashlib.sha256(src.encode("utf-8")).hexdigest(), state)


def _require_no_hooks(hooks: object) -> None:
    if hooks:  # an OrderedDict of backward hooks; always empty in saved networks
        raise WeightsInvalid("a pickled tensor carries backward hooks")


def _rebuild_tensor_v2(storage: object, storage_offset: int, size: tuple, stride: tuple,
                       requires_grad: bool, backward_hooks: object, metadata: object = None) -> torch.Tensor:
    """torch's own tensor rebuild, once the storage is known to be a real storage and hooks are empty."""
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise WeightsInvalid(f"a pickled tensor is backed by a {type(storage).__name__}, not a storage")
    _require_no_hooks(backward_hooks)
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           backward_hooks, metadata)


def _rebuild_parameter(data: object, requires_grad: bool, backward_hooks: object) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise WeightsInvalid(f"a pickled Parameter wraps a {type(data).__name__}, not a tensor")
    _require_no_hooks(backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)


def _rebuild_parameter_with_state(data: object, requires_grad: bool, backward_hooks: object,
                                  state: object) -> torch.nn.Parameter:
    """Newer torch writes this variant when a Parameter has Python attributes; refuse any."""
    parts = state if isinstance(state, tuple) else (state,)
    if any(parts):
        raise WeightsInvalid("a pickled Parameter carries extra Python attributes")
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_TORCH_REFUSAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)\.(\w+)")
_TORCH_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", re.S)


def torch_load_weights_only(source: BinaryIO, path: Path) -> object:
    """`torch.load(weights_only=True)` on CPU; its refusals become UnsafeCheckpoint / WeightsInvalid.

    torch's own message suggests retrying with weights_only=False, advice no caller may follow,
    so only the refused global is kept.
    """
    try:
        return torch.load(source, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        refused = _TORCH_REFUSAL.search(str(exc))
        if refused:
            raise UnsafeCheckpoint(path, refused.group(1), refused.group(2)) from None
        detail = _TORCH_DETAIL.search(str(exc))
        reason = detail.group(1) if detail else "refused by torch's weights-only unpickler"
        raise WeightsInvalid(f"{path}: cannot be read as torch data: {reason}") from None
    except (RuntimeError, EOFError, ValueError, TypeError) as exc:
        raise WeightsInvalid(f"{path}: cannot be read as torch data: {exc}") from None


def load_storage_bytes(payload: object, path: Path) -> object:
    """Stands in for `torch.storage._load_from_bytes`: the nested legacy torch.save of one storage.

    torch's own version calls `torch.load(..., weights_only=False)` on these bytes; here the
    restricted weights-only unpickler reads them, so a payload naming any other global is refused.
    """
    if not isinstance(payload, bytes):
        raise WeightsInvalid(f"{path}: a tensor storage is a {type(payload).__name__}, not bytes")
    storage = torch_load_weights_only(io.BytesIO(payload), path)
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise WeightsInvalid(f"{path}: a tensor storage decodes to a {type(storage).__name__}")
    return storage


def _numpy_scalar() -> Callable[..., Any]:
    """numpy's scalar reconstructor; numpy 2 moved numpy.core to numpy._core (same function)."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar


def _module_stub(qualname: str) -> type[ModuleStub]:
    return type(qualname.rsplit(".", 1)[1], (ModuleStub,), {"qualname": qualname})


# Module classes that EG3D pickles by reference (not persistent, so no embedded source).
PLAIN_MODULE_CLASSES = (
    "training.triplane.OSGDecoder",
    "training.volumetric_rendering.renderer.ImportanceRenderer",
    "training.volumetric_rendering.ray_sampler.RaySampler",
    "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.activation.Softplus",
)

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar(),  # written by numpy 1.x
    ("numpy._core.multiarray", "scalar"): _numpy_scalar(),  # written by numpy 2.x
    ("numpy", "dtype"): np.dtype,
    **{tuple(q.rsplit(".", 1)): _module_stub(q) for q in PLAIN_MODULE_CLASSES},
}
_LOAD_FROM_BYTES = ("torch.storage", "_load_from_bytes")  # bound to the file path in find_class

ALLOWED_GLOBALS: tuple[str, ...] = tuple(sorted(f"{m}.{n}" for m, n in [*_ALLOWED, _LOAD_FROM_BYTES]))


class SafeUnpickler(pickle.Unpickler):
    """Unpickles an EG3D network pickle into stubs; any global off the allow-list is refused."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == _LOAD_FROM_BYTES:
            return lambda payload: load_storage_bytes(payload, self.path)
        if (module, name) in _ALLOWED:
            return _ALLOWED[module, name]
        raise UnsafeCheckpoint(self.path, module, name)

    def persistent_load(self, pid: object) -> Any:
        raise WeightsInvalid(f"{self.path}: uses pickle persistent ids, which EG3D network pickles never do")


def unpickle_safely(path: Path) -> Any:
    """The whole pickle as plain data and stubs. Raises UnsafeCheckpoint / WeightsInvalid."""
    with open(path, "rb") as f:
        try:
            return SafeUnpickler(f, path).load()
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
                IndexError, KeyError) as exc:
            raise WeightsInvalid(f"{path} is not a readable network pickle: {type(exc).__name__}: {exc}") from None
