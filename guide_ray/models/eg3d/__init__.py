"""EG3D in pure PyTorch: official module tree and names, reference ops, safe checkpoint loading."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guide_ray.models.eg3d.checkpoint import load_eg3d
    from guide_ray.models.eg3d.triplane import TriPlaneGenerator

__all__ = ["TriPlaneGenerator", "load_eg3d"]


def __getattr__(name: str) -> Any:
    if name == "load_eg3d":
        from guide_ray.models.eg3d.checkpoint import load_eg3d
        return load_eg3d
    if name == "TriPlaneGenerator":
        from guide_ray.models.eg3d.triplane import TriPlaneGenerator
        return TriPlaneGenerator
    raise AttributeError(name)
