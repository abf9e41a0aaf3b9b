"""The StyleGAN2 generator that EG3D uses as its tri-plane backbone (skip architecture only)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from guide_ray.models.eg3d import ops
from guide_ray.models.eg3d.layers import MappingNetwork, SynthesisLayer, ToRGBLayer


def resolve_fused_modconv(fused_modconv: bool | str | None, default: bool | str, training: bool) -> bool:
    """'inference_only' fuses in eval mode and splits in train mode, as EG3D does."""
    fused = default if fused_modconv is None else fused_modconv
    return (not training) if fused == "inference_only" else bool(fused)


def block_dtype(use_fp16: bool, ws: Tensor, force_fp32: bool) -> torch.dtype:
    """FP16 only for blocks configured for it, and only on CUDA (EG3D forces FP32 elsewhere)."""
    return torch.float16 if use_fp16 and ws.device.type == "cuda" and not force_fp32 else torch.float32


class SynthesisBlock(nn.Module):
    """One resolution: [const or 2× up conv0] → conv1 → ToRGB added to the upsampled skip image."""

    up = 2  # SynthesisBlockNoUp (super-resolution) sets 1: same layers, no resampling

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: tuple[int, ...] = (1, 3, 3, 1),
                 conv_clamp: float | None = 256, use_fp16: bool = False, fp16_channels_last: bool = False,
                 fused_modconv_default: bool | str = True, **layer_kwargs) -> None:
        assert architecture == "skip", "EG3D's generator and super-resolution use the 'skip' architecture"
        super().__init__()
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=self.up,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                channels_last=self.channels_last)
        self.num_torgb += 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, force_fp32: bool = False,
                fused_modconv: bool | str | None = None, update_emas: bool = False,
                **layer_kwargs) -> tuple[Tensor, Tensor]:
        assert ws.shape[1:] == (self.num_conv + self.num_torgb, self.w_dim)
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, ws, force_fp32)
        memory_format = torch.channels_last if self.channels_last and dtype == torch.float16 else torch.contiguous_format
        fused = resolve_fused_modconv(fused_modconv, self.fused_modconv_default, self.training)
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), fused_modconv=fused, **layer_kwargs)
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
            x = self.conv0(x, next(w_iter), fused_modconv=fused, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused, **layer_kwargs)
        if img is not None and self.up > 1:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused).to(dtype=torch.float32,
                                                                  memory_format=torch.contiguous_format)
        img = img.add_(y) if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """4×4 const → ... → img_resolution; ws [B, num_ws, w_dim] → image [B, img_channels, R, R]."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 4, **block_kwargs) -> None:
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=is_last,
                                   use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: Tensor, **block_kwargs) -> Tensor:
        assert ws.shape[1:] == (self.num_ws, self.w_dim), f"ws must be [B, {self.num_ws}, {self.w_dim}]"
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # each ToRGB shares its w with the next block's first conv
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), **block_kwargs)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: `synthesis` registered before `mapping`, as in the official state_dict."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, **synthesis_kwargs) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **(mapping_kwargs or {}))

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False, **synthesis_kwargs) -> Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
