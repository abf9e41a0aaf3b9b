"""Micro-batched steps: the chunked forward/backward equals the one-batch step (loss and gradient)."""

from __future__ import annotations

import pytest
import torch

from step_probe import assert_grads_close, make_setup, run_step

from guide_ray.config.guide import GuideConfig, SpeedConfig
from guide_ray.guide.sampling import StepLatents
from guide_ray.guide.step import chunks
from guide_ray.models.eg3d import rendering


@pytest.fixture()
def deterministic_renderer(monkeypatch):
    """The renderer's draws as constants, so chunks (which draw in chunk order) see the same samples."""
    monkeypatch.setattr(rendering, "_uniform", lambda shape, *, device, generator: torch.full(shape, 0.5, device=device))


def test_chunks_keep_row_order_and_counts():
    w = torch.arange(5.0).view(5, 1, 1)
    parts = chunks(StepLatents(w, -w, 1, 2, 2), 2)
    assert [(p.n_local, p.n_adj, p.n_global) for p in parts] == [(1, 1, 0), (0, 1, 1), (0, 0, 1)]
    assert torch.equal(torch.cat([p.w_src for p in parts]), w) and torch.equal(parts[1].w_tgt, -w[2:4])
    assert [(p.n_local, p.n_adj, p.n_global) for p in chunks(StepLatents(w[1:], w[1:], 0, 2, 2), 3)] == [(0, 2, 1), (0, 0, 1)]
    with pytest.raises(ValueError, match="micro_batch"):
        chunks(StepLatents(w, w, 1, 2, 2), 0)


def test_micro_batches_equal_the_one_batch_step(deterministic_renderer):
    cfg = GuideConfig(noise_mode="const", lambda_adj=0.7, lambda_global=1.3, speed=SpeedConfig(autocast="off"))
    setup = make_setup(cfg)
    whole = run_step(setup, cfg)
    assert whole.total > 1e-4 and len(setup.latents.w_src) == 5
    for micro_batch in (1, 2, 3):
        part = run_step(setup, cfg, micro_batch=micro_batch)
        assert part.total == pytest.approx(whole.total, abs=1e-5, rel=1e-5)
        torch.testing.assert_close(torch.tensor(part.parts), torch.tensor(whole.parts), atol=1e-5, rtol=1e-5)
        assert_grads_close(part.grads, whole.grads, atol=1e-5, rtol=1e-4)


def test_micro_batch_at_least_the_batch_is_the_one_batch_step_with_random_draws():
    """Random noise and depth jitter: micro_batch >= batch draws exactly what the one-batch step draws."""
    cfg = GuideConfig()
    setup = make_setup(cfg)
    whole, same = run_step(setup, cfg), run_step(setup, cfg, micro_batch=8)
    assert whole.parts == same.parts and torch.equal(whole.rng_after, same.rng_after)
    chunked = run_step(setup, cfg, micro_batch=2)
    assert chunked.parts != whole.parts            # chunks draw their own samples, in chunk order
    assert chunked.total == pytest.approx(whole.total, rel=0.2)
