"""pSp (pixel2style2pixel) FFHQ encoder: image → W+ codes for the 2D StyleGAN2 backend.

`encoder.py` is the GradualStyleEncoder, `load.py` the strict loader of `psp_ffhq_encode.pt`
and pSp's inversion (codes + latent_avg, decoded with input_is_latent=True), `presets.py` the
seeded untrained networks of a StyleGAN2 preset (`stylegan2-tiny`).
"""

from __future__ import annotations

from guide_ray.models.psp.encoder import GradualStyleEncoder
from guide_ray.models.psp.load import PspNetworks, load_psp, psp_invert
from guide_ray.models.psp.presets import build_psp

__all__ = ["GradualStyleEncoder", "PspNetworks", "build_psp", "load_psp", "psp_invert"]
