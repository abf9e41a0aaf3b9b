"""The world's face-recognition network, its margin head, and the features built on its trunk.

`WorldIdentityNet` maps images [B, 3, R, R] in [-1, 1] (any R; resized to 64²) to unit 128-d
embeddings. It is trained with a CosFace margin (`CosFaceHead`) over the renders of many
identities; two copies from different seeds serve as the world's ID loss and ID metric.
`trunk_features` exposes its four conv stages for the world's LPIPS (channel-normalised squared
differences, equally weighted: LPIPS's uncalibrated form) and its pooled last stage for FID.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT_SIZE = 64
EMBED_DIM = 128
CHANNELS = (32, 64, 96, 128)


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.PReLU(c_out), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.PReLU(c_out))


class WorldIdentityNet(nn.Module):
    """Four stride-2 stages (64² → 4²) then a linear embedding of the flattened 4² map."""

    def __init__(self) -> None:
        super().__init__()
        chans = (3, *CHANNELS)
        self.stages = nn.ModuleList(_stage(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(CHANNELS[-1] * 16, EMBED_DIM),
                                   nn.BatchNorm1d(EMBED_DIM))

    def trunk_features(self, x: Tensor) -> list[Tensor]:
        """The four stage outputs for images [B, 3, R, R] in [-1, 1]."""
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=True)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.embed(self.trunk_features(x)[-1]), dim=1)


class CosFaceHead(nn.Module):
    """Logits s * (cos(theta) - m * onehot) over `num_classes` identities (training only)."""

    def __init__(self, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, EMBED_DIM) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cosine = embeddings @ F.normalize(self.weight, dim=1).T
        return self.scale * (cosine - self.margin * F.one_hot(labels, cosine.shape[1]))


def perceptual_distance(net: WorldIdentityNet, x: Tensor, y: Tensor) -> Tensor:
    """LPIPS-style distance [B] on the identity trunk: per stage, unit-normalise channels, mean
    squared difference over space and channels; sum over stages."""
    total = x.new_zeros(x.shape[0])
    for fx, fy in zip(net.trunk_features(x), net.trunk_features(y)):
        diff = F.normalize(fx, dim=1) - F.normalize(fy, dim=1)
        total = total + diff.square().sum(1).mean((1, 2))
    return total


def fid_features(net: WorldIdentityNet, x: Tensor) -> Tensor:
    """FID features [B, 128]: the spatial mean of the last trunk stage (before the embedding)."""
    return net.trunk_features(x)[-1].mean((2, 3))
