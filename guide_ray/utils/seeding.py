"""Sub-seeds derived from one recorded seed, so every random stream of a run can be replayed.

`derive_seed` is the only seed derivation of the project (manifest rows, unlearning, inversion,
FID renders); it is plain stdlib so the config layer can use it without importing torch.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for the stream named `purpose`, stable across processes and platforms."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little") >> 1


def make_rng(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with derive_seed(seed, purpose)."""
    import torch

    return torch.Generator(device=torch.device(device)).manual_seed(derive_seed(seed, purpose))
