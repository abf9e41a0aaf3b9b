"""LPIPS_drift on the tiny world: 0 for an unchanged generator, pinned for a perturbed one, seeded probes."""

from __future__ import annotations

import copy

import pytest
import torch

from guide_ray.backends import get_backend
from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import DriftSpec
from guide_ray.metrics.drift import lpips_drift, probe_latents, probe_renders
from guide_ray.models.nets.standin import StandInPerceptual

# tiny G_s vs G_s with its synthesis weights perturbed by 0.3 N(0, 1) (seed 1); 6 probes, seed 2,
# batch 4; the stand-in LPIPS (random AlexNet trunk). Keyed by noise mode.
GOLDEN = {"random": 0.013206724232683579, "const": 0.012069939247642955}
SPEC = DriftSpec(num_probes=6, seed=2, batch_size=4)


@pytest.fixture(scope="module")
def world():
    backend, camera = get_backend("tiny"), CameraConfig()
    G = backend.load_generator(None, torch.device("cpu"))
    G_after = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_after.backbone.synthesis.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    return G, G_after, camera, backend.fid_render(camera), StandInPerceptual()


@pytest.mark.parametrize("noise_mode", ["random", "const"])
def test_golden_drift_and_zero_for_an_unchanged_generator(world, noise_mode: str) -> None:
    G, G_after, camera, render, lpips = world
    before = probe_renders(G, SPEC, camera, render, "cpu", noise_mode)
    assert [b.shape[0] for b in before] == [4, 2]
    # the same draws for both generators: equal weights give exactly 0, even with random noise
    assert lpips_drift(before, probe_renders(G, SPEC, camera, render, "cpu", noise_mode), lpips) == 0.0
    after = probe_renders(G_after, SPEC, camera, render, "cpu", noise_mode)
    assert lpips_drift(before, after, lpips) == pytest.approx(GOLDEN[noise_mode], rel=1e-4)


def test_probes_come_from_the_seed_alone() -> None:
    camera = CameraConfig()
    z, yaw = probe_latents(SPEC, 16, camera)
    assert z.shape == (6, 16) and yaw.shape == (6,) and bool((yaw.abs() <= camera.yaw_range).all())
    same = probe_latents(DriftSpec(num_probes=6, seed=2, batch_size=1), 16, camera)
    assert torch.equal(z, same[0]) and torch.equal(yaw, same[1])           # batching does not move them
    other = probe_latents(DriftSpec(num_probes=6, seed=3), 16, camera)
    assert not torch.equal(z, other[0])


def test_renders_of_different_probe_sets_are_refused(world) -> None:
    G, _, camera, render, lpips = world
    small = probe_renders(G, DriftSpec(num_probes=2, seed=2, batch_size=2), camera, render, "cpu", "const")
    other = probe_renders(G, DriftSpec(num_probes=3, seed=2, batch_size=2), camera, render, "cpu", "const")
    with pytest.raises(ValueError, match="batches differ"):
        lpips_drift(small, other, lpips)


def test_a_2d_backend_drifts_the_same_way() -> None:
    """Backend-generic: stylegan2-tiny's sample render (no camera) through the same probe code."""
    backend, camera = get_backend("stylegan2-tiny"), CameraConfig()
    G = backend.load_generator(None, torch.device("cpu"))
    G_after = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_after.synthesis_parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    render, lpips, spec = backend.fid_render(camera), StandInPerceptual(), DriftSpec(num_probes=3, seed=2)
    before = probe_renders(G, spec, camera, render, "cpu", "random")
    assert lpips_drift(before, probe_renders(G, spec, camera, render, "cpu", "random"), lpips) == 0.0
    assert lpips_drift(before, probe_renders(G_after, spec, camera, render, "cpu", "random"), lpips) > 0.0
