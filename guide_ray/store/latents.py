"""A cache of inverted latents, so a photo is inverted once per run, not once per variant.

The paper's tables unlearn each identity once per variant (baseline, extrapolated, …, guide)
from the same photo and the same seed, so the inversions are identical; an optimisation-based
inversion costs as much as a few hundred unlearning steps. Entries are keyed by everything the
latent depends on (photo bytes, generator weights, inversion settings, seed, device type), written
atomically and read with torch.load(weights_only=True); a damaged entry is recomputed, never trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from guide_ray.config.base import fingerprint
from guide_ray.utils.files import atomic_file

log = logging.getLogger(__name__)


class LatentCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def get_or_compute(self, key: dict, compute: Callable[[], Tensor]) -> Tensor:
        """The cached latent for `key` (same shape as a fresh one would have), or `compute()` stored under it."""
        path = self.root / f"{fingerprint(key)}.pt"
        if path.is_file():
            try:
                cached = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(cached, Tensor) and cached.dim() == 3 and torch.isfinite(cached).all():
                    return cached
            except Exception as exc:  # noqa: BLE001 - a damaged entry is recomputed
                log.warning("latent cache entry %s unreadable (%s); inverting again", path.name, exc)
        latent = compute().detach()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            torch.save(latent.cpu().contiguous(), tmp)
        return latent
