"""GOAE (ICCV 2023) encoder mirror: the image → W+ inverter GUIDE uses for real photos.

`swin.py` is the Swin-V2 backbone, `encoder.py` the GOAEncoder heads, `load.py` the strict loader
of the released `encoder_FFHQ.pt`. The encoder's outputs are offsets from EG3D's `w_avg`.
"""

from __future__ import annotations

from guide_ray.models.goae.encoder import GOAEncoder
from guide_ray.models.goae.load import ENCODER_FILENAME, load_goae_encoder
from guide_ray.models.goae.swin import SwinV2Config

__all__ = ["ENCODER_FILENAME", "GOAEncoder", "SwinV2Config", "load_goae_encoder"]
