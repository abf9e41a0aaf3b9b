"""The faithful official-order step (guide/reference.py) gives our step's loss and gradient."""

from __future__ import annotations

import copy

import pytest
import torch

from step_probe import assert_grads_close, make_setup, run_step

from guide_ray.config.guide import GuideConfig, SpeedConfig
from guide_ray.guide.loop import trainable_parameters
from guide_ray.guide.reference import reference_step
from guide_ray.models.eg3d import rendering
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual


@pytest.mark.parametrize("backward", ["sum", "per_term"])
@pytest.mark.parametrize("variant", [{}, {"loss_local": False}, {"loss_global": False, "n_adj": 1}])
def test_reference_step_equals_our_step(monkeypatch, variant, backward):
    monkeypatch.setattr(rendering, "_uniform", lambda shape, *, device, generator: torch.full(shape, 0.5, device=device))
    cfg = GuideConfig(noise_mode="const", lambda_adj=0.7, lambda_global=1.3, speed=SpeedConfig(autocast="off"), **variant)
    setup = make_setup(cfg)
    ours = run_step(setup, cfg)
    G_u = copy.deepcopy(setup.G_u)
    params = trainable_parameters(G_u)
    G_u.train()
    nets = LossNets(StandInPerceptual(), StandInIdentity())
    loss = reference_step(G_u, setup.G_s, setup.latents, setup.c, cfg, nets, torch.Generator().manual_seed(1),
                          backward=backward)
    assert not setup.G_s.training                                     # official train mode only during the step
    assert loss == pytest.approx(ours.total, abs=1e-5, rel=1e-5) and loss > 1e-4
    assert_grads_close([p.grad for p in params], ours.grads, atol=1e-5, rtol=1e-3)


def test_reference_step_refuses_an_unknown_backward():
    cfg = GuideConfig(noise_mode="const", speed=SpeedConfig(autocast="off"))
    setup = make_setup(cfg)
    nets = LossNets(StandInPerceptual(), StandInIdentity())
    with pytest.raises(ValueError, match="backward must be"):
        reference_step(setup.G_u, setup.G_s, setup.latents, setup.c, cfg, nets, torch.Generator(), backward="once")
