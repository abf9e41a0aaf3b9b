"""Inverted latents are computed once per (photo, generator, settings, seed) and never trusted damaged."""

from __future__ import annotations

from pathlib import Path

import torch

from guide_ray.store.latents import LatentCache


def test_second_request_reads_the_cache(tmp_path: Path) -> None:
    cache, calls = LatentCache(tmp_path), []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.arange(6.0).view(1, 2, 3)

    key = {"photo": "abc", "seed": 1}
    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(key, compute)
    assert len(calls) == 1 and torch.equal(first, second)
    cache.get_or_compute({"photo": "abc", "seed": 2}, compute)          # another seed is another latent
    assert len(calls) == 2


def test_a_damaged_entry_is_recomputed(tmp_path: Path) -> None:
    cache = LatentCache(tmp_path)
    key = {"photo": "abc"}
    cache.get_or_compute(key, lambda: torch.ones(1, 2, 3))
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(b"not a tensor")
    again = cache.get_or_compute(key, lambda: torch.full((1, 2, 3), 2.0))
    assert torch.equal(again, torch.full((1, 2, 3), 2.0))
    assert torch.equal(torch.load(entry, weights_only=True), again)     # replaced by the fresh one
