"""Pure-PyTorch equivalents of StyleGAN2's custom ops (bias_act, upfirdn2d, conv2d_resample).

EG3D ships CUDA plugins compiled at run time (a frequent setup failure, eg3d#50) and uses these
reference semantics on CPU. We keep only the reference semantics, on every device, so the model
needs no compiler and gives the same numbers on CPU and CUDA up to floating-point order.
Only the cases EG3D's generator uses are supported; anything else fails an assertion.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# name -> (function, default alpha, default gain); gains keep activations at unit variance.
ACTIVATIONS = {
    "linear": (lambda x, alpha: x, 0.0, 1.0),
    "relu": (lambda x, alpha: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": (lambda x, alpha: F.leaky_relu(x, alpha), 0.2, math.sqrt(2)),
}


def default_gain(act: str) -> float:
    return ACTIVATIONS[act][2]


def bias_act(x: Tensor, b: Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> Tensor:
    """x + b (broadcast along `dim`) → activation → × gain → clamp to ±clamp (None = no clamp)."""
    func, def_alpha, def_gain = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else def_alpha)
    gain = float(gain if gain is not None else def_gain)
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim]
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(f: list[float]) -> Tensor:
    """Normalised 2-D FIR filter (outer product of a short 1-D kernel), float32, e.g. [1,3,3,1] → 4×4."""
    f = torch.as_tensor(f, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _padding4(padding: int | list[int]) -> list[int]:
    if isinstance(padding, int):
        return [padding] * 4
    return list(padding) if len(padding) == 4 else [padding[0], padding[0], padding[1], padding[1]]


def upfirdn2d(x: Tensor, f: Tensor, up: int = 1, down: int = 1, padding: int | list[int] = 0,
              flip_filter: bool = False, gain: float = 1) -> Tensor:
    """Upsample by zero insertion, pad (negative = crop), FIR-filter depthwise, downsample by striding.

    x: [N, C, H, W]; f: [fh, fw] float32; padding [x0, x1, y0, y1] is relative to the upsampled image.
    """
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _padding4(padding)
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::down, ::down]


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """2× FIR upsampling whose output is exactly `up` times the input size (the skip-image path)."""
    fh, fw = f.shape
    p = [(fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=p, gain=up * up)


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, padding: int = 0,
                    groups: int = 1, flip_weight: bool = True) -> Tensor:
    """Convolution with optional 2× FIR upsampling, padding applied once (StyleGAN2 semantics).

    up == 1: plain (grouped) correlation. up > 1: transposed strided convolution followed by the
    FIR low-pass, which equals zero-insert → filter → convolve but is cheaper.
    flip_weight=False means true convolution (the kernel is flipped relative to F.conv2d).
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1:
        if not flip_weight and (kh > 1 or kw > 1):
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)
    assert f is not None and f.ndim == 2
    fh, fw = f.shape
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    if flip_weight and (kh > 1 or kw > 1):  # transposed conv already convolves; flip to correlate
        w = w.flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)
