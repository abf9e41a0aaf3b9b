"""pSp (pixel2style2pixel) FFHQ encoder: image → W+ codes for the 2D StyleGAN2 backend.

`encoder.py` is the GradualStyleEncoder, `load.py` the strict loader of `psp_ffhq_encode.pt`
and pSp's inversion (codes + latent_avg, decoded with input_is_latent=True).
"""

from __future__ import annotations

from guide_ray.models.psp.encoder import GradualStyleEncoder
from guide_ray.models.psp.load import PspNetworks, load_psp, psp_invert

__all__ = ["GradualStyleEncoder", "PspNetworks", "load_psp", "psp_invert"]
