"""Every speed / memory switch against the plain fp32 step on the same inputs (GUIDE's random draws on).

Tolerances, stated once here and in docs/speed.md:
* grad_checkpoint, target_inference_mode: exact (same floats, same RNG state after the step);
* channels_last: loss parts and gradients to 1e-5 (a different summation order in the convolutions);
* autocast sr-bf16 (the super-resolution in bf16): each loss part within 1 % (1e-3 absolute for
  near-zero parts), gradient cosine >= 0.9999, on tiny and on the shipped world (measured on the
  world: 0.68 %, 0.99999);
* autocast bf16 (the whole synthesis): 2 %, cosine >= 0.999 on tiny (measured cosine 0.99993); 3 %,
  cosine >= 0.99 on the world (measured 2.1 %, 0.994);
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
    return run_step(setup, GuideConfig(speed=SpeedConfig(target_inference_mode=False, autocast="off")))


def test_inference_mode_targets_are_exact(setup, fp32):
    fast = run_step(setup, GuideConfig(speed=SpeedConfig(autocast="off")))
    assert fast.parts == fp32.parts and torch.equal(fast.rng_after, fp32.rng_after)
    assert all(torch.equal(a, b) for a, b in zip(fast.grads, fp32.grads))


def test_gradient_checkpointing_is_exact_and_replays_the_renderer_draws(setup, fp32):
    ckpt = run_step(setup, GuideConfig(grad_checkpoint=True, speed=SpeedConfig(target_inference_mode=False, autocast="off")))
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
    fast = run_step(nhwc, GuideConfig(speed=SpeedConfig(channels_last=True, autocast="off")))
    torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(fp32.parts), atol=1e-5, rtol=1e-5)
    assert_grads_close(fast.grads, fp32.grads, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize(("autocast", "rtol", "min_cosine"), [("sr-bf16", 1e-2, 0.9999), ("bf16", 2e-2, 0.999)])
def test_bf16_autocast_within_stated_tolerance(setup, fp32, autocast, rtol, min_cosine):
    fast = run_step(setup, GuideConfig(speed=SpeedConfig(autocast=autocast)))
    assert fast.parts != fp32.parts                                   # it really ran in bf16
    torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(fp32.parts), atol=1e-3, rtol=rtol)
    assert grad_cosine(fast.grads, fp32.grads) >= min_cosine
    assert torch.equal(fast.rng_after, fp32.rng_after)                # same draws, only the arithmetic differs


@pytest.mark.parametrize(("autocast", "rtol", "min_cosine"), [("sr-bf16", 1e-2, 0.9999), ("bf16", 3e-2, 0.99)])
def test_autocast_on_the_world_within_stated_tolerance(autocast, rtol, min_cosine):
    """The guard on the embedded default: the shipped world generator and the world's loss networks."""
    from guide_ray.models.nets.factory import build_loss_nets

    world = make_setup(GuideConfig(), preset="world")
    nets = build_loss_nets("world", "no-such-weights-dir", "cpu")
    base = run_step(world, GuideConfig(speed=SpeedConfig(target_inference_mode=False, autocast="off")), nets)
    fast = run_step(world, GuideConfig(speed=SpeedConfig(autocast=autocast)), nets)
    assert fast.parts != base.parts
    torch.testing.assert_close(torch.tensor(fast.parts), torch.tensor(base.parts), atol=1e-3, rtol=rtol)
    assert grad_cosine(fast.grads, base.grads) >= min_cosine
    assert torch.equal(fast.rng_after, base.rng_after)
    assert "forward" not in vars(world.G_s.superresolution) and "synthesis" not in vars(world.G_s)   # unpatched after


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

    base = step(SpeedConfig(target_inference_mode=False, autocast="off"))
    for speed, rtol in ((SpeedConfig(tf32=True, autocast="off"), 1e-2), (SpeedConfig(autocast="sr-bf16"), 1e-2),
                        (SpeedConfig(autocast="bf16"), 2e-2)):
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
                            GuideConfig(speed=SpeedConfig(target_inference_mode=False, autocast="off")), fresh=False)
    assert "synthesis" not in vars(G)
    torch.testing.assert_close(torch.tensor(compiled.parts), torch.tensor(fp32.parts), atol=1e-6, rtol=1e-4)
    assert_grads_close(compiled.grads, fp32.grads, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize(("native", "expected"), [(True, "sr-bf16"), (False, "off")])
def test_auto_autocast_is_sr_bf16_only_where_bf16_is_native(monkeypatch, native, expected):
    from guide_ray.guide import fast

    monkeypatch.setattr(fast, "native_bf16", lambda device: native)
    assert fast.resolve_autocast(SpeedConfig(), torch.device("cpu")) == expected
    for explicit in ("off", "sr-bf16", "bf16"):                       # an explicit choice is never overridden
        assert fast.resolve_autocast(SpeedConfig(autocast=explicit), torch.device("cpu")) == explicit


def test_reduced_precision_runs_only_the_super_resolution_in_bf16(setup):
    """Inside the block the SR computes in bf16 and hands fp32 on; the backbone stays fp32; afterwards G is plain."""
    from guide_ray.guide.fast import reduced_precision

    G = copy.deepcopy(setup.G_s)
    seen = {}
    hooks = [G.superresolution.block0.register_forward_hook(lambda m, a, out: seen.update(sr=out[0].dtype)),
             G.backbone.synthesis.register_forward_hook(lambda m, a, out: seen.update(backbone=out.dtype))]
    with torch.no_grad(), reduced_precision(G, SpeedConfig(autocast="sr-bf16")):
        out = G.synthesis(setup.latents.w_src[:1], setup.c, noise_mode="const")
    for h in hooks:
        h.remove()
    assert seen == {"sr": torch.bfloat16, "backbone": torch.float32} and out["image"].dtype == torch.float32
    assert "forward" not in vars(G.superresolution)


def test_sr_bf16_leaves_a_generator_without_super_resolution_in_fp32():
    from guide_ray.guide.fast import reduced_precision

    G = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with reduced_precision(G, SpeedConfig(autocast="sr-bf16")):
        assert G(torch.ones(1, 2)).dtype == torch.float32 and "forward" not in vars(G)
