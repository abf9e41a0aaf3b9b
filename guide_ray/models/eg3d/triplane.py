"""EG3D's TriPlaneGenerator: StyleGAN2 backbone → 3 × 32-channel planes → volume rendering → SR.

Module tree and parameter names mirror `training.triplane` so official `G_ema` tensors load
with strict=True; deliberate deviations are listed in UPSTREAM.md.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from guide_ray.models.eg3d.layers import FullyConnectedLayer
from guide_ray.models.eg3d.rendering import ImportanceRenderer, RaySampler
from guide_ray.models.eg3d.stylegan2 import Generator as StyleGAN2Backbone
from guide_ray.models.eg3d.superresolution import SUPERRESOLUTION_MODULES

PLANE_CHANNELS = 32
PLANE_RESOLUTION = 256  # EG3D's fixed tri-plane size, whatever the output resolution


class OSGDecoder(nn.Module):
    """Mean of the three plane features → FC(32→64) → softplus → FC(64→1+32): σ and 32 colour features."""

    def __init__(self, n_features: int, options: dict) -> None:
        super().__init__()
        self.hidden_dim = 64
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=options["decoder_lr_mul"]),
            nn.Softplus(),
            FullyConnectedLayer(self.hidden_dim, 1 + options["decoder_output_dim"],
                                lr_multiplier=options["decoder_lr_mul"]),
        )

    def forward(self, sampled_features: Tensor, ray_directions: Tensor) -> dict[str, Tensor]:
        x = sampled_features.mean(1)  # [N, M, C]: aggregate the planes
        n, m, c = x.shape
        x = self.net(x.view(n * m, c)).view(n, m, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001  # MipNeRF's widened sigmoid
        return {"rgb": rgb, "sigma": x[..., 0:1]}


class TriPlaneGenerator(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 sr_num_fp16_res: int = 0, mapping_kwargs: dict | None = None,
                 rendering_kwargs: dict | None = None, sr_kwargs: dict | None = None,
                 plane_resolution: int = PLANE_RESOLUTION, **synthesis_kwargs) -> None:
        """Official arguments, plus `plane_resolution` (ours, default EG3D's 256) for the CPU stand-in."""
        super().__init__()
        # Recorded like EG3D's persistence wrapper does, so the network can be rebuilt and saved.
        self.init_kwargs = copy.deepcopy(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            sr_num_fp16_res=sr_num_fp16_res, mapping_kwargs=mapping_kwargs, rendering_kwargs=rendering_kwargs,
            sr_kwargs=sr_kwargs, **({} if plane_resolution == PLANE_RESOLUTION else {"plane_resolution": plane_resolution}),
            **synthesis_kwargs))
        rendering_kwargs = dict(rendering_kwargs or {})
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.renderer = ImportanceRenderer()
        self.ray_sampler = RaySampler()
        self.backbone = StyleGAN2Backbone(z_dim, c_dim, w_dim, img_resolution=plane_resolution,
                                          img_channels=PLANE_CHANNELS * 3, mapping_kwargs=mapping_kwargs,
                                          **synthesis_kwargs)
        sr_class = SUPERRESOLUTION_MODULES[rendering_kwargs["superresolution_module"]]
        self.superresolution = sr_class(channels=PLANE_CHANNELS, img_resolution=img_resolution,
                                        sr_num_fp16_res=sr_num_fp16_res,
                                        sr_antialias=rendering_kwargs["sr_antialias"], **(sr_kwargs or {}))
        self.decoder = OSGDecoder(PLANE_CHANNELS, {"decoder_lr_mul": rendering_kwargs.get("decoder_lr_mul", 1),
                                                   "decoder_output_dim": PLANE_CHANNELS})
        self.neural_rendering_resolution = 64  # checkpoints override this (128 for ffhq512-128)
        self.rendering_kwargs = rendering_kwargs

    l2_output = "planes"  # GUIDE's L2 term compares the raw tri-planes (guide/generator.py)

    @property
    def w_avg(self) -> Tensor:
        """[w_dim]: the mapping network's tracked mean, GUIDE's w_avg."""
        return self.backbone.mapping.w_avg

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """What GUIDE trains: the StyleGAN2 synthesis network that produces the tri-planes."""
        return list(self.backbone.synthesis.parameters())

    def mapping(self, z: Tensor, c: Tensor, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                update_emas: bool = False) -> Tensor:
        """z [B, z_dim], camera label c [B, 25] → ws [B, num_ws, w_dim]."""
        if self.rendering_kwargs["c_gen_conditioning_zero"]:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.rendering_kwargs["c_scale"], truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def synthesis(self, ws: Tensor, c: Tensor, neural_rendering_resolution: int | None = None,
                  update_emas: bool = False, generator: torch.Generator | None = None,
                  **synthesis_kwargs) -> dict[str, Tensor]:
        """ws [B, num_ws, w_dim], c [B, 25] → image [B, 3, R, R] and image_raw / image_depth at the
        neural rendering resolution, plus the raw `planes` [B, 96, P, P] of the same forward (P = 256).

        `generator` supplies the backbone noise (noise_mode='random') and the renderer's depth draws.
        """
        cam2world_matrix = c[:, :16].view(-1, 4, 4)
        intrinsics = c[:, 16:25].view(-1, 3, 3)
        resolution = neural_rendering_resolution or self.neural_rendering_resolution
        ray_origins, ray_directions = self.ray_sampler(cam2world_matrix, intrinsics, resolution)
        n = ray_origins.shape[0]
        planes = self.backbone.synthesis(ws, update_emas=update_emas, generator=generator, **synthesis_kwargs)
        planes_3 = planes.view(len(planes), 3, PLANE_CHANNELS, planes.shape[-2], planes.shape[-1])
        feature_samples, depth_samples, _ = self.renderer(planes_3, self.decoder, ray_origins, ray_directions,
                                                          self.rendering_kwargs, generator=generator)
        feature_image = feature_samples.permute(0, 2, 1).reshape(n, feature_samples.shape[-1], resolution,
                                                                 resolution).contiguous()
        depth_image = depth_samples.permute(0, 2, 1).reshape(n, 1, resolution, resolution)
        rgb_image = feature_image[:, :3]
        sr_kwargs = {k: v for k, v in synthesis_kwargs.items() if k != "noise_mode"}
        sr_image = self.superresolution(rgb_image, feature_image, ws,
                                        noise_mode=self.rendering_kwargs["superresolution_noise_mode"],
                                        generator=generator, **sr_kwargs)
        return {"image": sr_image, "image_raw": rgb_image, "image_depth": depth_image, "planes": planes}

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1, truncation_cutoff: int | None = None,
                neural_rendering_resolution: int | None = None, update_emas: bool = False,
                **synthesis_kwargs) -> dict[str, Tensor]:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, c, neural_rendering_resolution=neural_rendering_resolution,
                              update_emas=update_emas, **synthesis_kwargs)
