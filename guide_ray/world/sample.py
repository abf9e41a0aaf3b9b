"""A picture a person can look at: identities (rows) × yaws (columns) from the renderer and,
given a trained world generator, the generator's view of the same latent under each renderer row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from guide_ray.utils.files import atomic_file
from guide_ray.world.nuisance import canonical_nuisance, cameras
from guide_ray.world.generator import WORLD, build_world_generator, generate
from guide_ray.world.population import sample_identities, z_to_identity
from guide_ray.world.renderer import render

DEFAULT_YAWS = (-0.6, -0.2618, 0.0, 0.2618, 0.6)  # ±pi/12 is GUIDE's range; ±0.6 the training range


def identity_grid(identity: torch.Tensor, yaws: tuple[float, ...], resolution: int) -> torch.Tensor:
    """Renders [I, Y, 3, R, R] of each identity at each yaw, canonical light, neutral expression."""
    n, m = identity.shape[0], len(yaws)
    ids = identity.repeat_interleave(m, 0)
    cams = cameras(torch.tensor(yaws).repeat(n))
    return render(ids, cams, canonical_nuisance(n * m), resolution).view(n, m, 3, resolution, resolution)


def write_grid(images: torch.Tensor, path: Path) -> Path:
    """[I, Y, 3, R, R] in [-1, 1] → one PNG, rows = identities."""
    n, m, _, r, _ = images.shape
    tiles = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    grid = tiles.permute(0, 3, 1, 4, 2).reshape(n * r, m * r, 3).numpy()
    with atomic_file(path) as tmp:
        Image.fromarray(np.ascontiguousarray(grid)).save(tmp, format="PNG")
    return path


@torch.no_grad()
def generator_grid(generator_file: Path, z: torch.Tensor, yaws: tuple[float, ...], resolution: int) -> torch.Tensor:
    """The trained world generator's images [I, Y, 3, R, R] of latents z at each yaw."""
    G = build_world_generator(0)
    G.load_state_dict(torch.load(generator_file, map_location="cpu", weights_only=True))
    G.eval()
    n, m = z.shape[0], len(yaws)
    images = generate(G, z.repeat_interleave(m, 0), cameras(torch.tensor(yaws).repeat(n)),
                      generator=torch.Generator().manual_seed(0))["image"]
    images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True)
    return images.view(n, m, 3, resolution, resolution)


def sample_grid(path: Path, n: int, seed: int, domain: str, resolution: int,
                yaws: tuple[float, ...] = DEFAULT_YAWS, generator_file: Path | None = None) -> Path:
    """Renderer rows of `n` identities; with `generator_file`, in-domain identities come from
    seeded latents (z ↦ identity) and each renderer row is followed by the generator's row."""
    rng = torch.Generator().manual_seed(seed)
    if generator_file is None:
        return write_grid(identity_grid(sample_identities(n, rng, domain), yaws, resolution), path)
    z = torch.randn(n, WORLD["z_dim"], generator=rng)
    rows = torch.stack([identity_grid(z_to_identity(z), yaws, resolution),
                        generator_grid(generator_file, z, yaws, resolution)], 1)
    return write_grid(rows.flatten(0, 1), path)
