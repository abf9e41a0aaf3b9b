"""A picture a person can look at: identities (rows) × yaws (columns) from the renderer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from guide_ray.utils.files import atomic_file
from guide_ray.world.nuisance import canonical_nuisance, cameras
from guide_ray.world.population import sample_identities
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


def sample_grid(path: Path, n: int, seed: int, domain: str, resolution: int,
                yaws: tuple[float, ...] = DEFAULT_YAWS) -> Path:
    identity = sample_identities(n, torch.Generator().manual_seed(seed), domain)
    return write_grid(identity_grid(identity, yaws, resolution), path)
