"""UFO numerics, adjacency deltas and the per-step latent batch."""

from __future__ import annotations

import math

import pytest
import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.guide import average_target, ufo_target
from guide_ray.guide.sampling import adjacency_deltas, sample_step_latents, step_camera
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.presets import build_generator


def test_ufo_target_is_d_past_the_mean_opposite_the_identity():
    torch.manual_seed(0)
    w_avg = torch.randn(512)
    w_u = w_avg + torch.randn(1, 14, 512) * torch.linspace(0.1, 3, 14).view(1, 14, 1)  # uneven layer norms
    w_t = ufo_target(w_u, w_avg, d=30.0)
    w_id = w_u - w_avg
    offset = w_t - w_avg
    assert offset.flatten().norm().item() == pytest.approx(30.0, rel=1e-5)       # Frobenius over all of W+
    cos = torch.nn.functional.cosine_similarity(offset.flatten(), w_id.flatten(), dim=0)
    assert cos.item() == pytest.approx(-1.0, abs=1e-6)
    # one global norm, not per-layer: layer offsets keep the identity's uneven layer norms
    ratios = offset[0].norm(dim=1) / w_id[0].norm(dim=1)
    assert torch.allclose(ratios, ratios[0].expand(14), rtol=1e-5)
    expected = w_avg - 30.0 * w_id / w_id.flatten().norm()
    torch.testing.assert_close(w_t, expected)


def test_ufo_on_a_random_identity_gives_30_over_sqrt14_per_layer():
    w_avg = torch.zeros(512)
    w_u = torch.randn(1, 1, 512).repeat(1, 14, 1)                 # plain W broadcast, rows identical
    per_layer = (ufo_target(w_u, w_avg, 30.0) - w_avg)[0].norm(dim=1)
    torch.testing.assert_close(per_layer, torch.full((14,), 30 / math.sqrt(14)))


def test_ufo_batched_uses_one_norm_per_sample():
    w_avg = torch.zeros(8)
    w_u = torch.stack([torch.ones(2, 8), 5 * torch.ones(2, 8)])
    w_t = ufo_target(w_u, w_avg, 4.0)
    assert w_t.flatten(1).norm(dim=1).tolist() == pytest.approx([4.0, 4.0])


def test_baseline_target_is_w_avg():
    w_avg = torch.randn(512)
    w_t = average_target(torch.randn(1, 14, 512), w_avg)
    assert w_t.shape == (1, 14, 512) and torch.equal(w_t[0, 3], w_avg)


def test_adjacency_delta_norms_equal_alpha():
    w_u, w_r = torch.randn(1, 14, 512), torch.randn(4, 14, 512)
    alpha = torch.tensor([0.0, 1.0, 7.5, 15.0])
    norms = adjacency_deltas(w_u, w_r, alpha).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, alpha, atol=1e-4, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    return build_generator("tiny")


def test_step_latents_share_delta_and_stay_within_alpha_max(tiny):
    cfg = GuideConfig(n_adj=16, n_global=3)
    rng = torch.Generator().manual_seed(0)
    c_front = frontal_camera(1)
    w_u = tiny.mapping(torch.randn(1, tiny.z_dim, generator=rng), c_front)
    w_t = ufo_target(w_u, tiny.backbone.mapping.w_avg, cfg.d)
    latents = sample_step_latents(cfg, w_u, w_t, tiny, c_front, rng)
    assert latents.w_src.shape == (1 + 16 + 3, tiny.backbone.num_ws, 512)
    assert torch.equal(latents.w_src[0], w_u[0]) and torch.equal(latents.w_tgt[0], w_t[0])
    delta_src = latents.w_src[1:17] - w_u
    delta_tgt = latents.w_tgt[1:17] - w_t
    torch.testing.assert_close(delta_src, delta_tgt, atol=1e-4, rtol=0)      # the same Δ on both sides
    norms = delta_src.flatten(1).norm(dim=1)
    assert (norms >= 0).all() and (norms <= cfg.alpha_max + 1e-3).all()
    assert norms.std() > 1                                                     # α really is drawn
    assert torch.equal(latents.w_src[17:], latents.w_tgt[17:])                 # global: same latent
    assert (latents.n_local, latents.n_adj, latents.n_global) == (1, 16, 3)


def test_step_latents_follow_the_loss_switches(tiny):
    cfg = GuideConfig(loss_adj=False)
    rng = torch.Generator().manual_seed(0)
    w = tiny.mapping(torch.randn(1, tiny.z_dim, generator=rng), frontal_camera(1))
    latents = sample_step_latents(cfg, w, w, tiny, frontal_camera(1), rng)
    assert latents.w_src.shape[0] == cfg.batch_size == 3 and latents.n_adj == 0


def test_step_camera_yaw_range_and_pitch():
    cfg = GuideConfig().camera
    rng = torch.Generator().manual_seed(0)
    for _ in range(50):
        c2w = step_camera(cfg, rng, torch.device("cpu"))[0, :16].view(4, 4)
        origin = c2w[:3, 3]
        assert origin.norm().item() == pytest.approx(2.7, abs=1e-5)
        yaw = math.atan2(origin[0].item(), origin[2].item())
        assert abs(yaw) <= math.pi / 12 + 1e-6
        # EG3D maps the polar parameter v to phi = arccos(1 - 2 v / pi) (area-uniform), v = pi/2 - 0.2
        phi = math.acos(1 - 2 * (math.pi / 2 - 0.2) / math.pi)
        assert math.acos(origin[1].item() / 2.7) == pytest.approx(phi, abs=1e-5)
