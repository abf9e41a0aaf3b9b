"""pSp's `GradualStyleEncoder` (eladrich/pixel2style2pixel models/encoders/psp_encoders.py).

An IR-SE50 body (the units of `models/nets/irse.py`, so `encoder.body.N.*` names match) feeds a
three-level feature pyramid; 18 `GradualStyleBlock` heads each read one level and emit one W+
row: heads 0–2 the 16² map, 3–6 the 32² map, 7–17 the 64² map (for a 256² input). Names, order
and shapes equal the `encoder.*` part of `psp_ffhq_encode.pt` (tests pin them to the fixture).
Must not import ray or touch files.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.nets.irse import ir_body_units
from guide_ray.models.stylegan2.layers import EqualLinear

COARSE_IND, MIDDLE_IND = 3, 7          # heads [0, 3) coarse, [3, 7) middle, [7, n_styles) fine
FEATURE_TAPS = (6, 20, 23)             # body indices whose outputs are c1 (64²), c2 (32²), c3 (16²)
_HEAD_SPATIAL = (16, 32, 64)           # upstream's per-level map size: log2 of it = stride-2 convs


class GradualStyleBlock(nn.Module):
    """log2(spatial) stride-2 3×3 convs (LeakyReLU 0.01) down to 1×1, then EqualLinear → one W row."""

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c, self.spatial = out_c, spatial
        modules: list[nn.Module] = [nn.Conv2d(in_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        for _ in range(int(math.log2(spatial)) - 1):
            modules += [nn.Conv2d(out_c, out_c, kernel_size=3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*modules)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.convs(x).view(-1, self.out_c))


class GradualStyleEncoder(nn.Module):
    def __init__(self, num_layers: int, mode: str, n_styles: int = 18, input_nc: int = 3, *,
                 widths: tuple[int, int, int, int] = (64, 128, 256, 512)) -> None:
        """Upstream's arguments (opts.n_styles / opts.input_nc as parameters), plus `widths`
        (ours, keyword-only, default upstream's) to narrow the body for the CPU preset; the
        style width is widths[-1] (512 upstream)."""
        super().__init__()
        if n_styles <= MIDDLE_IND:
            raise ValueError(f"n_styles must exceed {MIDDLE_IND} so every pyramid level has a head (got {n_styles})")
        style_dim = widths[-1]
        self.input_layer = nn.Sequential(nn.Conv2d(input_nc, widths[0], (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0]))
        self.body = nn.Sequential(*ir_body_units(num_layers, mode, widths))
        self.style_count, self.coarse_ind, self.middle_ind = n_styles, COARSE_IND, MIDDLE_IND
        self.styles = nn.ModuleList(GradualStyleBlock(style_dim, style_dim, self._head_spatial(i))
                                    for i in range(n_styles))
        self.latlayer1 = nn.Conv2d(widths[2], style_dim, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(widths[1], style_dim, kernel_size=1, stride=1, padding=0)

    def _head_spatial(self, i: int) -> int:
        level = 0 if i < self.coarse_ind else 1 if i < self.middle_ind else 2
        return _HEAD_SPATIAL[level]

    @staticmethod
    def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
        return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, input_nc, 256, 256] in [-1, 1] → codes [B, n_styles, style_dim] (before latent_avg)."""
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in FEATURE_TAPS:
                taps[i] = x
        c1, c2, c3 = (taps[i] for i in FEATURE_TAPS)
        latents = [self.styles[j](c3) for j in range(self.coarse_ind)]
        p2 = self._upsample_add(c3, self.latlayer1(c2))
        latents += [self.styles[j](p2) for j in range(self.coarse_ind, self.middle_ind)]
        p1 = self._upsample_add(p2, self.latlayer2(c1))
        latents += [self.styles[j](p1) for j in range(self.middle_ind, self.style_count)]
        return torch.stack(latents, dim=1)
