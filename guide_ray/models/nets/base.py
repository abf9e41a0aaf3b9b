"""The two pluggable loss/metric networks the unlearning core talks to.

The core never imports a concrete network: it receives objects with these shapes, so the
embedded default (stand-ins, CPU) and the real IR-SE50 / LPIPS-VGG / CurricularFace backends
run through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


class FrozenNet(nn.Module):
    """A loss or metric network: no trainable parameters and always in eval mode.

    `.train()` is a no-op so that a parent's train() never turns on dropout (LPIPS heads) or
    BatchNorm updates (IR-SE50); the official code leaves these trainable, which only wastes compute.
    """

    def freeze(self) -> FrozenNet:
        return self.requires_grad_(False).train(False)

    def train(self, mode: bool = True) -> FrozenNet:
        return super().train(False)


@runtime_checkable
class PerceptualDistance(Protocol):
    """d(x, y) per sample. x, y: [B, 3, H, W] in [-1, 1] → [B] (LPIPS semantics, lower = closer)."""

    name: str
    stand_in: bool

    def __call__(self, x: Tensor, y: Tensor) -> Tensor: ...


@runtime_checkable
class IdentityEmbedder(Protocol):
    """f(x): [B, 3, H, W] in [-1, 1] → [B, D] L2-normalised embeddings (cosine = dot product)."""

    name: str
    stand_in: bool

    def __call__(self, x: Tensor) -> Tensor: ...


def identity_loss(embedder: IdentityEmbedder, y_hat: Tensor, y: Tensor) -> Tensor:
    """Per-sample 1 - <f(y_hat), f(y)>, the target branch detached (GUIDE's IDLoss). → [B]."""
    with torch.no_grad():
        e_y = embedder(y)
    return 1 - (embedder(y_hat) * e_y).sum(dim=1)


@dataclass(frozen=True)
class LossNets:
    """The networks the unlearning loss needs, injected into the core (stand-ins or real)."""

    perceptual: PerceptualDistance
    identity: IdentityEmbedder

    @property
    def stand_in(self) -> bool:
        return self.perceptual.stand_in or self.identity.stand_in
