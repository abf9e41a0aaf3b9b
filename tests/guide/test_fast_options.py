"""Every speed / memory switch against the plain fp32 step on the same inputs (GUIDE's random draws on).

Tolerances, stated once here and in docs/speed.md:
* grad_checkpoint, target_inference_mode: exact (same floats, same RNG state after the step);
* channels_last: loss parts and gradients to 1e-5 (a different summation order in the convolutions);
* autocast bf16: each loss part within 2 % (relative, 1e-3 absolute for near-zero parts), gradient
  cosine >= 0.999; measured on tiny: 0.2 % and 0.99992;
* tf32 (CUDA only): loss within 1 %, gradient cosine >= 0.999;
* compile: loss to 1e-4 relative, gradients to 1e-4 (slow: compiling takes minutes on CPU).
"""

from __future__ import annotations

import copy

import pytest
import torch

from step_probe import assert_grads_close, grad_cosine, make_setup, run_step

from guide_ray.config.guide import GuideConfig, SpeedConfig
from guide_ray.guide.fast import compiled_synthesis, cuda_flags, grad_checkpointing, to_channels_last


@pytest.fixture(scope="module")
def setup():
    return make_setup(GuideConfig())


@pytest.fixture(scope="module")
def fp32(setup):
    return run_step(setup, GuideConfig(speed=SpeedConfig(target_inference_mode=False)))


def test_inference_mode_targets_are_exact(setup, fp32):
    fast = run_step(setup, GuideConfig())
    assert fast.parts == fp32.parts and torch.equal(fast.rng_after, fp32.rng_after)
    assert all(torch.equal(a, b) for a, b in zip(fast.grads, fp32.grads))


def test_gradient_checkpointing_is_exact_and_replays_the_renderer_draws(setup, fp32):
    ckpt = run_step(setup, GuideConfig(grad_checkpoint=True, speed=SpeedConfig(target_inference_mode=False)))
    assert ckpt.parts == fp32.parts and torch.equal(ckpt.rng_after, fp32.rng_after)
    assert all(torch.equal(a, b) for a, b in zip(ckpt.grads, fp32.grads))


def test_gradient_checkpointing_patches_only_inside_the_block(setup):
    G = copy.deepcopy(setup.G_u)
    with grad_checkpointing(G, enabled=True):
        assert "forward" in vars(G.renderer) and "forward" in vars(G.superresolution)
    assert "forward" not in vars(G.renderer) and "forward" not in vars(G.superresolution)
    with pytest.raises(ValueError, match="grad_checkpoint"), grad_checkpointing(torch.nn.Linear(1, 1), enabled=True):
        pass


def test_channels_last_within_1e_5(setup, fp32):
    nhwc = copy.deepcopy(setup)
    to_channels_last(nhwc.G_s, nhwc.G_u)
    assert nhwc.G_u.superresolution.block0.conv0.weight.is_contiguous(memory_format=torch.channels_last)
    fast = run_step(nhwc, GuideConfig(speed=SpeedConfig(channels_last=True)))
    torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(fp32.parts), atol=1e-5, rtol=1e-5)
    assert_grads_close(fast.grads, fp32.grads, atol=1e-5, rtol=1e-3)


def test_bf16_autocast_within_stated_tolerance(setup, fp32):
    fast = run_step(setup, GuideConfig(speed=SpeedConfig(autocast="bf16")))
    assert fast.parts != fp32.parts                                   # it really ran in bf16
    torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(fp32.parts), atol=1e-3, rtol=2e-2)
    assert grad_cosine(fast.grads, fp32.grads) >= 0.999
    assert torch.equal(fast.rng_after, fp32.rng_after)                # same draws, only the arithmetic differs


@pytest.mark.gpu
def test_tf32_and_bf16_on_cuda_within_stated_tolerance():
    from guide_ray.guide.sampling import StepLatents
    from guide_ray.models.nets.base import LossNets
    from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual

    cpu = make_setup(GuideConfig())
    lat = cpu.latents
    setup = type(cpu)(cpu.G_s.cuda(), cpu.G_u.cuda(), StepLatents(lat.w_src.cuda(), lat.w_tgt.cuda(), lat.n_local,
                                                                   lat.n_adj, lat.n_global), cpu.c.cuda())
    nets = LossNets(StandInPerceptual().cuda(), StandInIdentity().cuda())
    before = torch.backends.cuda.matmul.allow_tf32

    def step(speed: SpeedConfig):
        with cuda_flags(speed):
            return run_step(setup, GuideConfig(speed=speed), nets=nets)

    base = step(SpeedConfig(target_inference_mode=False))
    for speed, rtol in ((SpeedConfig(tf32=True), 1e-2), (SpeedConfig(autocast="bf16"), 2e-2)):
        fast = step(speed)
        torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(base.parts), atol=1e-3, rtol=rtol)
        assert grad_cosine(fast.grads, base.grads) >= 0.999
    assert torch.backends.cuda.matmul.allow_tf32 == before           # the flag is restored after the block


@pytest.mark.slow
def test_compiled_synthesis_matches_eager(setup, fp32):
    G = copy.deepcopy(setup.G_u)
    with compiled_synthesis(G, enabled=True):
        assert "synthesis" in vars(G)
        compiled = run_step(type(setup)(setup.G_s, G, setup.latents, setup.c),
                            GuideConfig(speed=SpeedConfig(target_inference_mode=False)), fresh=False)
    assert "synthesis" not in vars(G)
    torch.testing.assert_close(torch.tensor(compiled.parts), torch.tensor(fp32.parts), atol=1e-6, rtol=1e-4)
    assert_grads_close(compiled.grads, fp32.grads, atol=1e-4, rtol=1e-3)
