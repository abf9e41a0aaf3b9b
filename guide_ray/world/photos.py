"""Photos of world identities for the photo scenarios (`guide-ray manifest world`).

The world's counterpart of the paper's FFHQ / CelebA-HQ test photos: identities drawn from the
in-domain or the shifted out-of-domain population, rendered by the ground-truth renderer.
Photo 00 (the source the identity is unlearned from) is frontal at the canonical light, the view
the projection inversion assumes; photos 1… (ID_others) vary as real photos do: yaw U(±0.3),
pitch U(±0.1), random light and expression (the ranges the identity networks were trained on).
Written at 256² (the inverters' input size) as 8-bit PNGs. All draws come from `seed`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from guide_ray.errors import ConfigError
from guide_ray.utils.seeding import make_rng
from guide_ray.world.nuisance import canonical_nuisance, cameras, sample_nuisance
from guide_ray.world.population import DOMAINS, sample_identities
from guide_ray.world.renderer import render
from guide_ray.world.sample import write_grid

PHOTO_SIZE = 256
OTHER_YAW, OTHER_PITCH = 0.3, 0.1
PREFIX = {"in_domain": "world-ind", "ood": "world-ood"}


@torch.no_grad()
def identity_photos(identity: torch.Tensor, photos: int, rng: torch.Generator) -> torch.Tensor:
    """[photos, 3, 256, 256] in [-1, 1] of one identity [P]: the frontal source, then varied photos."""
    n_other = photos - 1
    yaw = torch.cat([torch.zeros(1), (torch.rand(n_other, generator=rng) * 2 - 1) * OTHER_YAW])
    pitch = torch.cat([torch.zeros(1), (torch.rand(n_other, generator=rng) * 2 - 1) * OTHER_PITCH])
    nuisance = torch.cat([canonical_nuisance(1), sample_nuisance(n_other, rng)])
    return render(identity.expand(photos, -1), cameras(yaw, pitch), nuisance, PHOTO_SIZE)


def write_photo_folders(root: Path, domain: str, n: int, photos: int, seed: int) -> list[Path]:
    """`n` identities of `domain`, one sub-folder of `photos` PNGs each (00.png = source); the folders."""
    if domain not in DOMAINS:
        raise ConfigError(f"--domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    if n < 1 or photos < 1:
        raise ConfigError(f"--n and --photos must be at least 1, got {n} and {photos}")
    identities = sample_identities(n, make_rng(seed, f"photos:{domain}:identities"), domain)
    folders = []
    for i, identity in enumerate(identities):
        folder = root / f"{PREFIX[domain]}-{i:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        images = identity_photos(identity, photos, make_rng(seed, f"photos:{domain}:{i}"))
        for k, image in enumerate(images):
            write_grid(image[None, None], folder / f"{k:02d}.png")   # a 1 × 1 grid: one PNG
        folders.append(folder)
    return folders
