"""StyleGAN2 + pSp backends (`stylegan2-tiny`, `stylegan2-ffhq1024`): GUIDE-SG2 (paper appendix A.7).

No cameras: the mapping is unconditioned, the ID metric compares one view (the image itself) and
FID samples are plain z → image renders (the paired yaw draw is made and ignored, so the z
sequence is the one the EG3D protocol uses). Photos are inverted as pSp does: resized to 256²,
scaled to [-1, 1], w = E(x) + latent_avg. Images are compared at the decoder's output size
(1024² for FFHQ); pSp's `face_pool` (adaptive average pooling to 256²) only shapes pSp's own
training losses, and the paper does not say GUIDE-SG2 pooled, so nothing is pooled here (the ID
networks crop and resize to 112², Inception to 299², LPIPS runs at the given size). The artifact
is the synthesis convolutions (everything of the decoder but the mapping `style` and noise buffers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from guide_ray.backends import GeneratorBackend, SampleRender, Views, cpu_state, load_state
from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import InversionSpec
from guide_ray.errors import BadImage
from guide_ray.guide.inversion import Inverter
from guide_ray.models import weights as weight_registry
from guide_ray.models.nets.base import LossNets
from guide_ray.models.psp.load import PspNetworks
from guide_ray.models.stylegan2.unlearnable import SYNTHESIS_MODULES, GuideStyleGAN2
from guide_ray.utils.seeding import make_rng

PSP_INPUT_SIZE = 256            # pSp's test transforms: Resize((256, 256)), ToTensor, Normalize(0.5, 0.5)


class StyleGAN2Backend(GeneratorBackend):
    def __init__(self, info) -> None:
        super().__init__(info)
        self._psp: PspNetworks | None = None       # the encoder comes from the generator's file

    def load_generator(self, weights_dir: Path, device: torch.device) -> GuideStyleGAN2:
        """The seeded preset (stand-in) or pSp's decoder + latent_avg from psp_ffhq_encode.pt (weights-only)."""
        if self.info.stand_in:
            from guide_ray.models.psp.presets import build_psp
            nets = build_psp(self.name)
        else:
            from guide_ray.models.psp.load import load_psp
            nets = load_psp(weight_registry.resolve_file(weight_registry.PSP_FFHQ_ENCODE.name, weights_dir))
        self._psp = nets
        G = GuideStyleGAN2(nets.decoder, nets.latent_avg)
        return G.to(device).eval().requires_grad_(False)

    @torch.no_grad()
    def source_latent(self, G: GuideStyleGAN2, seed: int, camera: CameraConfig) -> Tensor:
        """w_u = mapping(z) broadcast to every W+ row, z ~ N(0, I) from `seed` (psi = 1)."""
        z = torch.randn(1, G.z_dim, generator=make_rng(seed, "source"))
        return G.mapping(z.to(G.latent_avg.device))

    def id_views(self, camera: CameraConfig, n_views: int, seed: int = 0) -> Views:
        """One view (a 2D generator has no pose to sweep): constant noise, so before / after pair exactly."""
        @torch.no_grad()
        def render(G: GuideStyleGAN2, w: Tensor) -> Tensor:
            rng = torch.Generator(device=w.device).manual_seed(seed)
            return G.synthesis(w, None, noise_mode="const", generator=rng)["image"]
        return render

    def fid_render(self, camera: CameraConfig) -> SampleRender:
        def render(G: GuideStyleGAN2, z: Tensor, yaw: Tensor, rng: torch.Generator, noise_mode: str) -> Tensor:
            return G.synthesis(G.mapping(z), None, noise_mode=noise_mode, generator=rng)["image"]
        return render

    def load_photo(self, path: Path) -> Tensor:
        """pSp's input: any RGB image resized (bilinear) to 256² → [1, 3, 256, 256] in [-1, 1]."""
        path = Path(path)
        if not path.is_file():
            raise BadImage(f"{path}: no such image file")
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((PSP_INPUT_SIZE, PSP_INPUT_SIZE), Image.Resampling.BILINEAR)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise BadImage(f"{path}: cannot read as an image ({err})") from err
        pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8))
        return (pixels.permute(2, 0, 1).float() / 127.5 - 1).unsqueeze(0)

    def inverter(self, G: GuideStyleGAN2, nets: LossNets, spec: InversionSpec, weights_dir: Path,
                 device: torch.device, seed: int) -> Inverter:
        if self._psp is None:
            raise RuntimeError("load_generator must run before inverter: the pSp encoder comes with it")
        encoder = self._psp.encoder.to(device)
        return PspInverter(PspNetworks(encoder, G.decoder, G.latent_avg, self._psp.arch), stand_in=self.info.stand_in)

    def unlearned_state(self, G_u: GuideStyleGAN2) -> dict[str, Tensor]:
        return cpu_state(G_u.decoder, tuple(f"{m}." for m in SYNTHESIS_MODULES))

    def load_unlearned(self, G_s: GuideStyleGAN2, state: dict[str, Tensor]) -> GuideStyleGAN2:
        return load_state(G_s, lambda G: G.decoder, state)


class PspInverter:
    """w_u = pSp encoder(photo) + latent_avg (all rows): pSp's inversion, deterministic (eval mode)."""

    name = "psp"

    def __init__(self, nets: PspNetworks, *, stand_in: bool) -> None:
        self.nets, self.stand_in = nets, stand_in

    @torch.no_grad()
    def invert(self, image: Tensor) -> Tensor:
        """image [1, 3, 256, 256] in [-1, 1] → w_u [1, n_latent, C] on the encoder's device."""
        device = self.nets.latent_avg.device
        return self.nets.invert(image.to(device))


BACKEND = StyleGAN2Backend
