"""EG3D's super-resolution heads: feature image [B, 32, r, r] + raw RGB → final image.

Each head uses only the last w (repeated 3×), resizes its input to `input_resolution` if needed,
and runs two StyleGAN2 blocks; FP16 + conv_clamp 256 when `sr_num_fp16_res > 0` (CUDA only).
Names follow `training.superresolution.*` so released checkpoints load strictly.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.models.eg3d import ops
from guide_ray.models.eg3d.stylegan2 import SynthesisBlock


class SynthesisBlockNoUp(SynthesisBlock):
    """A SynthesisBlock without the 2× upsampling: conv0 and conv1 at the input resolution, and the
    skip image is added to at that resolution."""

    up = 1

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, **kwargs) -> None:
        assert in_channels != 0, "the no-upsampling block always has an input"
        super().__init__(in_channels, out_channels, w_dim, resolution, img_channels, is_last, **kwargs)


class _Superresolution(nn.Module):
    """Two blocks from the neural rendering to the final image; subclasses set the layout.

    Constructor arguments are EG3D's; `num_fp16_res`, `conv_clamp`, `channel_base` and
    `channel_max` are accepted and ignored there too (checkpoints pass them via sr_kwargs).
    """

    output_resolution: int
    input_resolution: int
    block0_class: type[SynthesisBlock]
    channels: tuple[int, int]           # out channels of block0 and block1
    has_resample_filter = True          # 8XDC has no module-level filter buffer
    resize_when_smaller_only = False    # 4X only resizes inputs below 128

    def __init__(self, channels: int, img_resolution: int, sr_num_fp16_res: int, sr_antialias: bool,
                 num_fp16_res: int = 4, conv_clamp: float | None = None, channel_base: int | None = None,
                 channel_max: int | None = None, **block_kwargs) -> None:
        super().__init__()
        assert img_resolution == self.output_resolution, f"{type(self).__name__} renders {self.output_resolution}²"
        self.sr_antialias = sr_antialias
        use_fp16 = sr_num_fp16_res > 0
        args = dict(w_dim=512, img_channels=3, use_fp16=use_fp16, conv_clamp=256 if use_fp16 else None, **block_kwargs)
        mid, out = self.channels
        res0 = self.input_resolution * self.block0_class.up
        self.block0 = self.block0_class(channels, mid, resolution=res0, is_last=False, **args)
        self.block1 = SynthesisBlock(mid, out, resolution=self.output_resolution, is_last=True, **args)
        if self.has_resample_filter:
            self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]))

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


class SuperresolutionHybrid8XDC(_Superresolution):
    """128 → 512 with wide channels (256 → 128); the head of ffhqrebalanced512-128.pkl."""

    output_resolution, input_resolution, block0_class, channels = 512, 128, SynthesisBlock, (256, 128)
    has_resample_filter = False


class SuperresolutionHybrid8X(_Superresolution):
    """128 → 512 (128 → 64 channels)."""

    output_resolution, input_resolution, block0_class, channels = 512, 128, SynthesisBlock, (128, 64)


class SuperresolutionHybrid4X(_Superresolution):
    """128 → 256; only inputs smaller than 128 are resized."""

    output_resolution, input_resolution, block0_class, channels = 256, 128, SynthesisBlockNoUp, (128, 64)
    resize_when_smaller_only = True


class SuperresolutionHybrid2X(_Superresolution):
    """64 → 128 (e.g. ShapeNet cars and the tiny stand-in world)."""

    output_resolution, input_resolution, block0_class, channels = 128, 64, SynthesisBlockNoUp, (128, 64)


SUPERRESOLUTION_MODULES = {
    f"training.superresolution.{cls.__name__}": cls
    for cls in (SuperresolutionHybrid8XDC, SuperresolutionHybrid8X, SuperresolutionHybrid4X, SuperresolutionHybrid2X)
}
