"""Seeded, untrained pSp networks for a StyleGAN2 preset: the photo inverter of `stylegan2-tiny`.

Like the generator preset, the encoder is an UNTRAINED seeded initialisation (narrow IR-SE50,
`n_latent` heads): its codes are near zero, so inversions land near `latent_avg`. It exists so
the 2D path's photo scenarios run on CPU with nothing downloaded; real weights come from `load_psp`.
"""

from __future__ import annotations

import torch

from guide_ray.models.psp.encoder import GradualStyleEncoder
from guide_ray.models.psp.load import PspArch, PspNetworks
from guide_ray.models.stylegan2.presets import TINY_SEED, build_generator, get_preset


def build_psp(name: str, seed: int = TINY_SEED) -> PspNetworks:
    """Encoder, decoder and latent_avg of StyleGAN2 preset `name`, reproducible from `seed`,
    eval and frozen on CPU; construction never touches the global RNG."""
    preset = get_preset(name)
    decoder, latent_avg = build_generator(name, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = GradualStyleEncoder(50, "ir_se", decoder.n_latent, widths=preset.encoder_widths)
    arch = PspArch("GradualStyleEncoder", input_nc=3, output_size=preset.size, learn_in_w=False,
                   start_from_latent_avg=True)
    return PspNetworks(encoder.eval().requires_grad_(False), decoder, latent_avg, arch)
