"""Golden values: pinned numbers of the deterministic numeric paths on the tiny preset (CPU, float32).

A deliberate change of the rendering, the losses or the ID metric changes these numbers and must
update them here, in the same commit, saying why. Fréchet distance: tests/metrics/test_fid.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from guide_ray.config.guide import CameraConfig, GuideConfig, SpeedConfig
from guide_ray.guide.loop import unlearn
from guide_ray.backends.eg3d import random_source_latent, yaw_sweep
from guide_ray.metrics.identity import id_similarity
from guide_ray.models.eg3d.camera import yaw_pitch_cameras
from guide_ray.models.eg3d.presets import build_generator
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual
from guide_ray.utils.seeding import make_rng

# image[0, :, 20:22, 30:32] of identity seed 3 at yaw 0.1, const noise, depth draws from seed 0
RENDER_SLICE = [-2.4341843128204346, -2.4405357837677, -2.4319889545440674, -2.4367923736572266,
                -0.9685124158859253, -0.9726144075393677, -0.9695671796798706, -0.9738942384719849,
                1.416100263595581, 1.4186112880706787, 1.4134808778762817, 1.4155770540237427]
# [total, local, adj, global] per step, GUIDE's defaults but lr 1e-3, stand-in loss networks
LOSS_TRACE = [[0.6683537364006042, 0.17803697288036346, 0.49024516344070435, 7.159963570302352e-05],
              [0.54692143201828, 0.17435474693775177, 0.3721289038658142, 0.00043780350824818015],
              [0.6511126160621643, 0.17382118105888367, 0.47563743591308594, 0.0016539839562028646]]
# the same with speed.autocast "sr-bf16" (measured on a CPU with AVX512-BF16)
LOSS_TRACE_SR_BF16 = [[0.666896402835846, 0.17849873006343842, 0.4882691502571106, 0.00012853037333115935],
                      [0.550843358039856, 0.1748403012752533, 0.37541961669921875, 0.0005833822651766241],
                      [0.6546481847763062, 0.17390947043895721, 0.47863149642944336, 0.0021072146482765675]]
# stand-in ID embedder, 3 views, synthesis weights perturbed by 0.3 N(0, 1) (seed 1)
ID_VALUE = 0.9992359280586243


@pytest.fixture(scope="module")
def world():
    G = build_generator("tiny", seed=0)
    camera = CameraConfig()
    return G, random_source_latent(G, 3, camera), camera


def test_tiny_render_slice(world) -> None:
    G, w, camera = world
    c = yaw_pitch_cameras(torch.tensor([0.1]), math.pi / 2 + camera.pitch_offset, camera.look_at_point,
                          camera.radius, camera.fov_deg)
    with torch.no_grad():
        image = G.synthesis(w, c, noise_mode="const", generator=torch.Generator().manual_seed(0))["image"]
    got = image[0, :, 20:22, 30:32].flatten().tolist()
    torch.testing.assert_close(torch.tensor(got), torch.tensor(RENDER_SLICE), atol=1e-5, rtol=1e-4)


def test_three_step_loss_trace(world) -> None:
    G, w, camera = world
    nets = LossNets(StandInPerceptual(), StandInIdentity())
    cfg = GuideConfig(iterations=3, lr=1e-3, speed=SpeedConfig(autocast="off"))
    result = unlearn(copy.deepcopy(G), G, w, cfg, nets, rng=make_rng(0, "unlearn"))
    got = [[p.total, p.local, p.adj, p.global_] for p in result.losses]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(LOSS_TRACE), atol=1e-6, rtol=1e-4)
    assert result.autocast == "off"


def test_three_step_loss_trace_with_bf16_super_resolution(world) -> None:
    """The same run with the SR in bf16 (speed.autocast 'sr-bf16'). The pin is 3e-4 relative, looser than
    fp32's for CPUs whose bf16 kernels accumulate in another order; it still tells this trace from the
    fp32 one (totals 2e-3 apart) and from whole-synthesis bf16 (7e-4 apart on the first step)."""
    G, w, camera = world
    nets = LossNets(StandInPerceptual(), StandInIdentity())
    cfg = GuideConfig(iterations=3, lr=1e-3, speed=SpeedConfig(autocast="sr-bf16"))
    result = unlearn(copy.deepcopy(G), G, w, cfg, nets, rng=make_rng(0, "unlearn"))
    got = [[p.total, p.local, p.adj, p.global_] for p in result.losses]
    assert result.autocast == "sr-bf16"
    torch.testing.assert_close(torch.tensor(got), torch.tensor(LOSS_TRACE_SR_BF16), atol=1e-5, rtol=3e-4)


def test_id_metric_on_fixed_renders(world) -> None:
    G, w, camera = world
    G_after = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_after.backbone.synthesis.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    got = id_similarity(G, G_after, w, StandInIdentity(), yaw_sweep(camera, 3))
    assert got == pytest.approx(ID_VALUE, abs=1e-5)
    assert id_similarity(G, G, w, StandInIdentity(), yaw_sweep(camera, 3)) == pytest.approx(1.0, abs=1e-5)


# GUIDE-SG2 on stylegan2-tiny (guide_ray/backends/stylegan2.py): the ID view of identity seed 3,
# image[0, :, 20:22, 30:32] (const noise); the stand-in ID over that one view with the synthesis
# convolutions perturbed by 0.3 N(0, 1) (seed 1); FID renders of z ~ seed 4, noise from seed 5,
# image[:, 0, 10, 10:12].
SG2_VIEW_SLICE = [1.9156441688537598, 1.7968469858169556, 1.9671510457992554, 1.846281886100769,
                  1.788692831993103, 1.6981847286224365, 1.7629289627075195, 1.665777325630188,
                  -0.648894727230072, -0.5031075477600098, -0.6150414347648621, -0.47089457511901855]
SG2_ID_VALUE = 0.9808327555656433
SG2_FID_RENDER_SLICE = [0.8997886776924133, 0.8808673620223999, 0.9199399948120117, 0.9822099208831787]


def test_stylegan2_tiny_views_id_and_fid_renders() -> None:
    from guide_ray.backends import get_backend

    backend, camera = get_backend("stylegan2-tiny"), CameraConfig()
    G = backend.load_generator(None, torch.device("cpu"))         # stand-in: reads no file
    w = backend.source_latent(G, 3, camera)
    views = backend.id_views(camera, 11)
    image = views(G, w)
    assert image.shape == (1, 3, 64, 64)                           # 2D: one view, whatever n_views is
    torch.testing.assert_close(image[0, :, 20:22, 30:32].flatten(), torch.tensor(SG2_VIEW_SLICE), atol=1e-5, rtol=1e-4)
    G_after = copy.deepcopy(G)
    with torch.no_grad():
        for p in G_after.synthesis_parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.3)
    assert id_similarity(G, G_after, w, StandInIdentity(), views) == pytest.approx(SG2_ID_VALUE, abs=1e-5)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4))
    renders = backend.fid_render(camera)(G, z, torch.zeros(2), torch.Generator().manual_seed(5), "random")
    torch.testing.assert_close(renders[:, 0, 10, 10:12].flatten(), torch.tensor(SG2_FID_RENDER_SLICE),
                               atol=1e-5, rtol=1e-4)
