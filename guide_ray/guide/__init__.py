"""The GUIDE method in plain PyTorch: UFO targets, batched LTU losses and the unlearning loop."""

from __future__ import annotations

from typing import Any

__all__ = ["ufo_target", "average_target", "unlearn"]


def __getattr__(name: str) -> Any:  # lazy: importing the package pulls in no torch
    if name in ("ufo_target", "average_target"):
        from guide_ray.guide import targets
        return getattr(targets, name)
    if name == "unlearn":
        from guide_ray.guide.loop import unlearn
        return unlearn
    raise AttributeError(name)
