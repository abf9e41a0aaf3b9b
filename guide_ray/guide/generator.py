"""What the GUIDE loop asks of a generator: the seam between the method and a backbone.

EG3D's `TriPlaneGenerator` and the 2D `GuideStyleGAN2` (models/stylegan2/unlearnable.py) both
satisfy `UnlearnableGenerator`, so the loop, the losses and the sampling are written once. Each
backend states here, in code, what the paper leaves to prose: the mean latent the UFO target
extrapolates from, which synthesis output the L2 term compares (EG3D: raw tri-planes; 2D: the
output images) and which parameters unlearning trains (the synthesis network; mapping frozen).
Cameras are passed to every call; a 2D backend ignores them. Implementations are nn.Modules.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class UnlearnableGenerator(Protocol):
    z_dim: int
    l2_output: str       # key of synthesis()'s dict that L2 compares: "planes" (EG3D) or "image" (2D)

    @property
    def w_avg(self) -> Tensor:
        """Mean latent, [C] or [L, C] (anything that broadcasts against [B, L, C] W+ codes)."""
        ...

    def mapping(self, z: Tensor, c: Tensor) -> Tensor:
        """z [B, z_dim], camera label c [B, 25] (ignored by 2D backends) → W+ [B, L, C]."""
        ...

    def synthesis(self, ws: Tensor, c: Tensor, *, noise_mode: str,
                  generator: torch.Generator | None) -> dict[str, Tensor]:
        """W+ [B, L, C] → {"image": [B, 3, R, R] in [-1, 1], l2_output: ...}; all draws from `generator`."""
        ...

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """The parameters unlearning trains; every other tensor must stay bit-identical."""
        ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...

    def requires_grad_(self, requires_grad: bool = True) -> nn.Module: ...
