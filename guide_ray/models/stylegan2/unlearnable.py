"""A StyleGAN2 decoder (pSp's layout) dressed as an `UnlearnableGenerator` for the GUIDE loop.

GUIDE-SG2 (paper appendix A.7) runs the same loop on a 2D generator: the L2 term compares output
images, cameras are ignored, the mapping is unconditioned, W+ has `n_latent` rows (18 at 1024²),
and only the synthesis convolutions train (`input`, `conv1`, `to_rgb1`, `convs`, `to_rgbs`; the
mapping `style` is frozen). The mean latent is pSp's `latent_avg` [n_latent, C], used as stored.
The decoder keeps its attribute name from pSp, so this module's state_dict keys are `decoder.*`
(plus `latent_avg`), like the released checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from guide_ray.models.stylegan2.model import Generator
from guide_ray.models.stylegan2.presets import TINY_SEED, build_generator

SYNTHESIS_MODULES = ("input", "conv1", "to_rgb1", "convs", "to_rgbs")   # everything but `style`


class GuideStyleGAN2(nn.Module):
    l2_output = "image"   # 2D: GUIDE's L2 term compares the generator's output images

    def __init__(self, decoder: Generator, latent_avg: Tensor) -> None:
        super().__init__()
        if latent_avg.shape != (decoder.n_latent, decoder.style_dim):
            raise ValueError(f"latent_avg must be [{decoder.n_latent}, {decoder.style_dim}], "
                             f"got {list(latent_avg.shape)}")
        self.decoder = decoder
        self.register_buffer("latent_avg", latent_avg.detach().clone())
        self.z_dim = decoder.style_dim
        self.n_latent = decoder.n_latent

    @property
    def w_avg(self) -> Tensor:
        return self.latent_avg                                   # [n_latent, C], every row as stored

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """z [B, C] → W+ [B, n_latent, C] (one w broadcast to every row); `c` is ignored."""
        return self.decoder.style(z).unsqueeze(1).repeat(1, self.n_latent, 1)

    def synthesis(self, ws: Tensor, c: Tensor | None = None, *, noise_mode: str = "const",
                  generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """W+ [B, n_latent, C] → {"image": [B, 3, size, size]}; `c` is ignored.

        noise_mode: "random" draws fresh noise from `generator`, "const" uses the stored
        `noises.noise_i` buffers, "none" adds no noise.
        """
        noise = None
        if noise_mode == "none":
            noise = [torch.zeros_like(getattr(self.decoder.noises, f"noise_{i}"))
                     for i in range(self.decoder.num_layers)]
        elif noise_mode not in ("random", "const"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        image, _ = self.decoder([ws], input_is_latent=True, noise=noise, randomize_noise=noise_mode == "random",
                                generator=generator)
        return {"image": image}

    def synthesis_parameters(self) -> list[nn.Parameter]:
        return [p for name in SYNTHESIS_MODULES for p in getattr(self.decoder, name).parameters()]


def build_unlearnable(name: str, seed: int = TINY_SEED) -> GuideStyleGAN2:
    """The seeded preset `name` (see presets.py) as an UnlearnableGenerator, eval and frozen."""
    decoder, latent_avg = build_generator(name, seed)
    return GuideStyleGAN2(decoder, latent_avg).eval().requires_grad_(False)
