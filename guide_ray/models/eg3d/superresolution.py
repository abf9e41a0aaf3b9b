"""EG3D's super-resolution heads: feature image [B, 32, r, r] + raw RGB → final image.

Each head uses only the last w (repeated 3×), resizes its input to `input_resolution` if needed,
and runs two StyleGAN2 blocks; FP16 + conv_clamp 256 when `sr_num_fp16_res > 0` (CUDA only).
Names follow `training.superresolution.*` so released checkpoints load strictly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.eg3d import ops
from guide_ray.models.eg3d.layers import SynthesisLayer, ToRGBLayer
from guide_ray.models.eg3d.stylegan2 import SynthesisBlock, block_dtype, resolve_fused_modconv


class SynthesisBlockNoUp(nn.Module):
    """A SynthesisBlock without the 2× upsampling: conv0 and conv1 at the input resolution."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: tuple[int, ...] = (1, 3, 3, 1),
                 conv_clamp: float | None = 256, use_fp16: bool = False, fp16_channels_last: bool = False,
                 fused_modconv_default: bool | str = True, **layer_kwargs) -> None:
        assert architecture == "skip" and in_channels != 0
        super().__init__()
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                channels_last=self.channels_last)
        self.num_conv, self.num_torgb = 2, 1

    def forward(self, x: Tensor, img: Tensor, ws: Tensor, force_fp32: bool = False,
                fused_modconv: bool | str | None = None, update_emas: bool = False,
                **layer_kwargs) -> tuple[Tensor, Tensor]:
        assert ws.shape[1:] == (3, self.w_dim)
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, ws, force_fp32)
        memory_format = torch.channels_last if self.channels_last and dtype == torch.float16 else torch.contiguous_format
        fused = resolve_fused_modconv(fused_modconv, self.fused_modconv_default, self.training)
        x = x.to(dtype=dtype, memory_format=memory_format)
        x = self.conv0(x, next(w_iter), fused_modconv=fused, **layer_kwargs)
        x = self.conv1(x, next(w_iter), fused_modconv=fused, **layer_kwargs)
        y = self.torgb(x, next(w_iter), fused_modconv=fused).to(dtype=torch.float32,
                                                                  memory_format=torch.contiguous_format)
        return x, img.add_(y)  # the skip image stays at this resolution: no upsampling


class _Superresolution(nn.Module):
    """Shared forward: last w ×3, resize the inputs to `input_resolution`, then block0 → block1."""

    input_resolution: int
    resize_when_smaller_only = False

    def forward(self, rgb: Tensor, x: Tensor, ws: Tensor, **block_kwargs) -> Tensor:
        ws = ws[:, -1:, :].repeat(1, 3, 1)
        size = x.shape[-1]
        needs_resize = size < self.input_resolution if self.resize_when_smaller_only else size != self.input_resolution
        if needs_resize:
            target = (self.input_resolution, self.input_resolution)
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
            rgb = F.interpolate(rgb, size=target, mode="bilinear", align_corners=False, antialias=self.sr_antialias)
        x, rgb = self.block0(x, rgb, ws, **block_kwargs)
        x, rgb = self.block1(x, rgb, ws, **block_kwargs)
        return rgb


def _block_args(sr_num_fp16_res: int) -> dict:
    use_fp16 = sr_num_fp16_res > 0
    return dict(w_dim=512, img_channels=3, use_fp16=use_fp16, conv_clamp=256 if use_fp16 else None)


class SuperresolutionHybrid8XDC(_Superresolution):
    """128 → 512, wide channels (256 → 128); the head of ffhqrebalanced512-128.pkl."""

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp: float | None = None, channel_base: int | None = None,
                 channel_max: int | None = None, **block_kwargs) -> None:
        super().__init__()
        assert img_resolution == 512
        self.sr_antialias = sr_antialias
        self.input_resolution = 128
        args = _block_args(sr_num_fp16_res)
        self.block0 = SynthesisBlock(channels, 256, resolution=256, is_last=False, **args, **block_kwargs)
        self.block1 = SynthesisBlock(256, 128, resolution=512, is_last=True, **args, **block_kwargs)


class SuperresolutionHybrid8X(_Superresolution):
    """128 → 512 (128 → 64 channels)."""

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp: float | None = None, channel_base: int | None = None,
                 channel_max: int | None = None, **block_kwargs) -> None:
        super().__init__()
        assert img_resolution == 512
        self.sr_antialias = sr_antialias
        self.input_resolution = 128
        args = _block_args(sr_num_fp16_res)
        self.block0 = SynthesisBlock(channels, 128, resolution=256, is_last=False, **args, **block_kwargs)
        self.block1 = SynthesisBlock(128, 64, resolution=512, is_last=True, **args, **block_kwargs)
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))


class SuperresolutionHybrid4X(_Superresolution):
    """128 → 256; only inputs smaller than 128 are resized."""

    resize_when_smaller_only = True

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp: float | None = None, channel_base: int | None = None,
                 channel_max: int | None = None, **block_kwargs) -> None:
        super().__init__()
        assert img_resolution == 256
        self.sr_antialias = sr_antialias
        self.input_resolution = 128
        args = _block_args(sr_num_fp16_res)
        self.block0 = SynthesisBlockNoUp(channels, 128, resolution=128, is_last=False, **args, **block_kwargs)
        self.block1 = SynthesisBlock(128, 64, resolution=256, is_last=True, **args, **block_kwargs)
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))


class SuperresolutionHybrid2X(_Superresolution):
    """64 → 128 (e.g. ShapeNet cars and the tiny stand-in world)."""

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp: float | None = None, channel_base: int | None = None,
                 channel_max: int | None = None, **block_kwargs) -> None:
        super().__init__()
        assert img_resolution == 128
        self.sr_antialias = sr_antialias
        self.input_resolution = 64
        args = _block_args(sr_num_fp16_res)
        self.block0 = SynthesisBlockNoUp(channels, 128, resolution=64, is_last=False, **args, **block_kwargs)
        self.block1 = SynthesisBlock(128, 64, resolution=128, is_last=True, **args, **block_kwargs)
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))


SUPERRESOLUTION_MODULES = {
    f"training.superresolution.{cls.__name__}": cls
    for cls in (SuperresolutionHybrid8XDC, SuperresolutionHybrid8X, SuperresolutionHybrid4X, SuperresolutionHybrid2X)
}
