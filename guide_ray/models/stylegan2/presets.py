"""Named StyleGAN2 configurations: pSp's FFHQ 1024² decoder and the `stylegan2-tiny` CPU stand-in.

`stylegan2-tiny` is the same architecture at 64² with narrow layers (n_latent = 10): an
UNTRAINED seeded initialisation that renders noise-like images, not faces. It exists so the 2D
path runs on a CPU machine with nothing downloaded. Its `latent_avg` is the mean mapping output of
seeded draws, broadcast to all W+ rows, the way pSp's file stores the real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from guide_ray.models.stylegan2.model import Generator


@dataclass(frozen=True)
class StyleGAN2Preset:
    """Generator arguments (upstream names) plus the pSp encoder width that matches it."""

    size: int
    style_dim: int
    n_mlp: int
    channel_multiplier: int = 2
    lr_mlp: float = 0.01
    channels: dict[int, int] | None = None            # None: upstream's table
    encoder_widths: tuple[int, int, int, int] = (64, 128, 256, 512)   # IR-SE stage widths

    def build(self) -> Generator:
        return Generator(self.size, self.style_dim, self.n_mlp, self.channel_multiplier, lr_mlp=self.lr_mlp,
                         channels=self.channels)


FFHQ1024 = StyleGAN2Preset(size=1024, style_dim=512, n_mlp=8)                 # pSp: Generator(1024, 512, 8)
TINY = StyleGAN2Preset(size=64, style_dim=64, n_mlp=8, channels={4: 64, 8: 64, 16: 32, 32: 32, 64: 16},
                       encoder_widths=(16, 16, 32, 64))

PRESETS: dict[str, StyleGAN2Preset] = {"stylegan2-ffhq1024": FFHQ1024, "stylegan2-tiny": TINY}
TINY_SEED = 0
LATENT_AVG_SAMPLES = 1000


def get_preset(name: str) -> StyleGAN2Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown StyleGAN2 preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]


def build_generator(name: str, seed: int = TINY_SEED) -> tuple[Generator, Tensor]:
    """A freshly initialised generator of preset `name` (eval, frozen, CPU) and its latent_avg
    [n_latent, style_dim], both reproducible from `seed`; construction never touches the global RNG.

    For stylegan2-ffhq1024 this is an untrained network of the official shape; real weights come
    from `guide_ray.models.psp.load_psp`.
    """
    preset = get_preset(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = preset.build()
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latent_avg = G.mean_latent(LATENT_AVG_SAMPLES, generator=rng).expand(G.n_latent, -1).clone()
    return G.eval().requires_grad_(False), latent_avg
