"""rosinality's StyleGAN2 layers (the ones pSp ships as its decoder), in pure PyTorch.

Class, attribute and buffer names follow `models/stylegan2/model.py` of pSp so the released
`decoder.*` tensors load with strict=True (pinned by tests against the fixture). His CUDA ops
are replaced by the project's reference ops (`models/eg3d/ops.py`), which give the same numbers:
`fused_leaky_relu(x, b)` = leaky_relu(x + b, 0.2) · √2 = `bias_act(x, b, act="lrelu")`, and his
`upfirdn2d(x, k, up, pad=(p0, p1))` is `ops.upfirdn2d` with padding [p0, p1, p0, p1] (both
convolve with the flipped kernel). Weights are stored raw and scaled at run time (equalised lr).
Must not import ray or touch files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.eg3d import ops


def fused_leaky_relu(x: Tensor, bias: Tensor, negative_slope: float = 0.2, scale: float = 2 ** 0.5) -> Tensor:
    """leaky_relu(x + bias) · scale, bias broadcast along dim 1 (rosinality's op, CPU semantics)."""
    return ops.bias_act(x, bias.to(x.dtype), dim=1, act="lrelu", alpha=negative_slope, gain=scale)


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """rosinality's upfirdn2d: the same (pad0, pad1) on both axes; the kernel is used as given."""
    return ops.upfirdn2d(x, kernel, up=up, down=down, padding=[pad[0], pad[1], pad[0], pad[1]])


def make_kernel(k: Sequence[float]) -> Tensor:
    """Normalised 2-D FIR kernel from a 1-D one: [1, 3, 3, 1] → 4×4 outer product / 64."""
    kernel = torch.tensor(k, dtype=torch.float32)
    if kernel.ndim == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return kernel / kernel.sum()


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """2× FIR upsampling of the skip image (ToRGB); the kernel buffer carries the factor² gain."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * (factor ** 2))
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        k = make_kernel(kernel)
        if upsample_factor > 1:
            k = k * (upsample_factor ** 2)
        self.register_buffer("kernel", k)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class EqualLinear(nn.Module):
    """Linear layer with equalised lr: weight N(0, 1)/lr_mul, scaled by lr_mul/√in at run time."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0, lr_mul: float = 1,
                 activation: str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class ModulatedConv2d(nn.Module):
    """Style-modulated (and demodulated) convolution as one grouped conv, a group per sample.

    Upsampling is rosinality's: a stride-2 transposed convolution of the unflipped weight, then Blur.
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.kernel_size, self.in_channel, self.out_channel = kernel_size, in_channel, out_channel
        self.upsample = upsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        batch, in_channel, height, width = x.shape
        k, out_channel = self.kernel_size, self.out_channel
        style = self.modulation(style).view(batch, 1, in_channel, 1, 1)
        weight = self.scale * self.weight * style                          # [B, O, I, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)
            weight = weight * demod.view(batch, out_channel, 1, 1, 1)
        x = x.reshape(1, batch * in_channel, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channel, out_channel, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            out = self.blur(out.view(batch, out_channel, *out.shape[2:]))
        else:
            weight = weight.reshape(batch * out_channel, in_channel, k, k)
            out = F.conv2d(x, weight, padding=self.padding, groups=batch)
            out = out.view(batch, out_channel, *out.shape[2:])
        return out


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: Tensor, noise: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """noise None: a fresh N(0, 1) map per sample, drawn from `generator` (ours; global RNG if None)."""
        if noise is None:
            batch, _, height, width = image.shape
            noise = torch.randn(batch, 1, height, width, generator=generator, device=image.device, dtype=image.dtype)
        return image + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, latent: Tensor) -> Tensor:
        return self.input.repeat(latent.shape[0], 1, 1, 1)


class FusedLeakyReLU(nn.Module):
    def __init__(self, channel: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int,
                 upsample: bool = False, blur_kernel: Sequence[float] = (1, 3, 3, 1), demodulate: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, upsample=upsample,
                                    blur_kernel=blur_kernel, demodulate=demodulate)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise, generator=generator))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out
