"""rosinality's StyleGAN2 generator in pSp's decoder layout, pure PyTorch (GUIDE-SG2's 2D backbone).

`model.py` is the generator, `layers.py` its blocks, `presets.py` the named sizes and
`unlearnable.py` the adapter the GUIDE loop trains.
"""

from __future__ import annotations

from guide_ray.models.stylegan2.model import Generator
from guide_ray.models.stylegan2.presets import PRESETS, build_generator
from guide_ray.models.stylegan2.unlearnable import GuideStyleGAN2, build_unlearnable

__all__ = ["PRESETS", "Generator", "GuideStyleGAN2", "build_generator", "build_unlearnable"]
