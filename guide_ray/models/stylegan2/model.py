"""rosinality's StyleGAN2 `Generator`, the decoder pSp ships: mapping `style`, then synthesis.

`Generator(1024, 512, 8)` is pSp's FFHQ decoder; its state_dict equals the `decoder.*` part of
`psp_ffhq_encode.pt` (tests/models/test_stylegan2.py pins names, order and shapes). Deviations
from upstream, each keyword-only with the upstream default, are listed in UPSTREAM.md:
`channels` (a smaller table for the CPU preset) and `generator` on the random draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from guide_ray.models.stylegan2.layers import ConstantInput, EqualLinear, PixelNorm, StyledConv, ToRGB


def default_channels(channel_multiplier: int) -> dict[int, int]:
    """Upstream's width per resolution: 512 up to 32² (64² at multiplier 2), then halving."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm,
            1024: 16 * cm}


class Generator(nn.Module):
    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01, *,
                 channels: Mapping[int, int] | None = None) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.log_size = int(math.log(size, 2))
        if 2 ** self.log_size != size or size < 8:
            raise ValueError(f"size must be a power of two >= 8 (got {size})")
        self.channels = dict(channels) if channels is not None else default_channels(channel_multiplier)
        absent = [2 ** i for i in range(2, self.log_size + 1) if 2 ** i not in self.channels]
        if absent:
            raise ValueError(f"channels has no width for resolution(s) {absent}")
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp,
                                                              activation="fused_lrelu") for _ in range(n_mlp)])
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)
        self.num_layers = (self.log_size - 2) * 2 + 1          # noise inputs: conv1 + 2 per resolution
        self.convs = nn.ModuleList()
        self.upsamples = nn.ModuleList()                       # upstream's, always empty (no state)
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2 ** res, 2 ** res))
        in_channel = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2 ** i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2                  # W+ rows: 18 at 1024²

    def make_noise(self, generator: torch.Generator | None = None) -> list[Tensor]:
        device = self.input.input.device
        noises = [torch.randn(1, 1, 4, 4, device=device, generator=generator)]
        for i in range(3, self.log_size + 1):
            noises += [torch.randn(1, 1, 2 ** i, 2 ** i, device=device, generator=generator) for _ in range(2)]
        return noises

    def mean_latent(self, n_latent: int, generator: torch.Generator | None = None) -> Tensor:
        """Mean mapping output of n_latent draws z ~ N(0, I) → [1, style_dim] (truncation centre)."""
        z = torch.randn(n_latent, self.style_dim, device=self.input.input.device, generator=generator)
        return self.style(z).mean(0, keepdim=True)

    def get_latent(self, z: Tensor) -> Tensor:
        return self.style(z)

    def forward(self, styles: list[Tensor], return_latents: bool = False, inject_index: int | None = None,
                truncation: float = 1, truncation_latent: Tensor | None = None, input_is_latent: bool = False,
                noise: list[Tensor | None] | None = None, randomize_noise: bool = True,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor | None]:
        """styles: one or two [B, style_dim] codes (z, or w if input_is_latent) or one [B, n_latent,
        style_dim] W+ code → (image [B, 3, size, size], W+ [B, n_latent, style_dim] if return_latents).

        Noise: `noise` if given, else per-call N(0, 1) maps (randomize_noise) or the stored
        `noises.noise_i`. `generator` (ours) feeds the per-call noise and the mixing index.
        """
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = ([None] * self.num_layers if randomize_noise
                     else [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)])
        if truncation < 1:
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        latent = self._broadcast(styles, inject_index, generator)
        out = self.input(latent)
        out = self.conv1(out, latent[:, 0], noise=noise[0], generator=generator)
        skip = self.to_rgb1(out, latent[:, 1])
        i = 1
        for conv1, conv2, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2],
                                                        noise[2::2], self.to_rgbs):
            out = conv1(out, latent[:, i], noise=noise1, generator=generator)
            out = conv2(out, latent[:, i + 1], noise=noise2, generator=generator)
            skip = to_rgb(out, latent[:, i + 2], skip)
            i += 2
        return skip, (latent if return_latents else None)

    def _broadcast(self, styles: list[Tensor], inject_index: int | None,
                   generator: torch.Generator | None) -> Tensor:
        """One code → all n_latent rows; two codes → rows [0, inject_index) from the first (mixing)."""
        if len(styles) < 2:
            return styles[0] if styles[0].ndim >= 3 else styles[0].unsqueeze(1).repeat(1, self.n_latent, 1)
        if inject_index is None:   # upstream: random.randint(1, n_latent - 1), from the global RNG
            device = generator.device if generator is not None else None
            inject_index = int(torch.randint(1, self.n_latent, (), generator=generator, device=device))
        first = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
        second = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
        return torch.cat([first, second], 1)
