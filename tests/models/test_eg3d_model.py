"""EG3D re-implementation: official names/shapes, official numerics of the reference ops, cameras."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from guide_ray.models.eg3d import ops
from guide_ray.models.eg3d.camera import FOV_to_intrinsics, LookAtPoseSampler, camera_label, frontal_camera
from guide_ray.models.eg3d.presets import FFHQ512_128, build_generator
from guide_ray.models.eg3d.rendering import generate_planes
from guide_ray.models.eg3d.triplane import TriPlaneGenerator


def _layout(G: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape)] for k, v in G.state_dict().items()]


@pytest.mark.parametrize("fixture", ["ffhq512-128.keys.json", "tiny-official.json"])
def test_state_dict_matches_official_layout(shared_dir, fixture):
    spec = json.loads((shared_dir / "fixtures/eg3d" / fixture).read_text())
    G = TriPlaneGenerator(**spec["init_kwargs"])
    sd = G.state_dict()
    assert list(sd) == spec["state_dict_keys"]                       # names and order
    shapes = {name: shape for name, shape in spec["parameters"] + spec["buffers"]}
    assert {k: list(v.shape) for k, v in sd.items()} == shapes
    assert sum(p.numel() for p in G.parameters()) == spec["num_parameters"]
    assert [n for n, _ in G.named_parameters()] == [n for n, _ in spec["parameters"]]
    assert sum(b.numel() for b in G.buffers()) == spec["num_buffer_elements"]


def test_ffhq_preset_is_the_official_config(shared_dir):
    spec = json.loads((shared_dir / "fixtures/eg3d/ffhq512-128.keys.json").read_text())
    assert FFHQ512_128 == spec["init_kwargs"]


def test_ffhq_forward_batch1_cpu():  # ~6 s and ~1.8 GB on 2 CPU cores
    torch.manual_seed(0)
    G = TriPlaneGenerator(**FFHQ512_128).eval()
    G.neural_rendering_resolution = 128
    rng = torch.Generator().manual_seed(0)
    c = frontal_camera(1)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 512, generator=rng), c)
        out = G.synthesis(ws, c, noise_mode="const", generator=rng)
    assert ws.shape == (1, 14, 512)
    assert out["image"].shape == (1, 3, 512, 512) and out["image"].dtype == torch.float32
    assert out["image_raw"].shape == (1, 3, 128, 128) and out["image_depth"].shape == (1, 1, 128, 128)
    assert out["planes"].shape == (1, 96, 256, 256)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.fixture(scope="module")
def tiny():
    return build_generator("tiny")


def _render(G, seed: int, **kwargs):
    rng = torch.Generator().manual_seed(seed)
    c = frontal_camera(2)
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, G.z_dim, generator=rng), c)
        return G.synthesis(ws, c, generator=rng, **kwargs)


def test_tiny_forward_is_seeded_and_pure(tiny):
    a, b, other = _render(tiny, 3), _render(tiny, 3), _render(tiny, 4)
    assert a["image"].shape == (2, 3, 128, 128) and a["image_raw"].shape == (2, 3, 32, 32)
    assert torch.equal(a["image"], b["image"])                       # noise + depth draws from the generator
    assert not torch.allclose(a["image"], other["image"])
    _render(tiny, 3, neural_rendering_resolution=16)
    assert tiny.neural_rendering_resolution == 32                    # synthesis never mutates the model


def test_build_generator_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = build_generator("tiny", seed=1), build_generator("tiny", seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.backbone.mapping.w_avg.abs().sum() > 0                   # w_avg is the mean mapping output


def test_fused_and_unfused_modconv_agree(tiny):
    fused = _render(tiny, 5, noise_mode="const", fused_modconv=True)
    split = _render(tiny, 5, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(fused["image"], split["image"], atol=2e-5, rtol=0)
    torch.testing.assert_close(fused["planes"], split["planes"], atol=2e-5, rtol=0)


def _naive_upfirdn(x, f, up, pad, gain):
    """Zero-insertion, zero padding, and a true (flipped) 2-D convolution written out with unfold."""
    n, c, h, w = x.shape
    y = torch.zeros(n, c, h * up, w * up)
    y[:, :, ::up, ::up] = x
    y = F.pad(y, pad)
    k = (f * gain).flip([0, 1])
    patches = F.unfold(y, k.shape)                                   # [n, c*kh*kw, L]
    out = (patches.view(n, c, -1, patches.shape[-1]) * k.reshape(1, 1, -1, 1)).sum(2)
    return out.view(n, c, y.shape[2] - k.shape[0] + 1, y.shape[3] - k.shape[1] + 1)


def test_upsample2d_matches_naive_fir():
    x = torch.randn(2, 3, 5, 5)
    f = ops.setup_filter([1, 3, 3, 1])
    torch.testing.assert_close(ops.upsample2d(x, f), _naive_upfirdn(x, f, 2, [2, 1, 2, 1], 4.0))
    assert torch.allclose(f.sum(), torch.tensor(1.0))


@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_up2_equals_upsample_then_convolve(groups):
    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 6, 6), torch.randn(6, 4 // groups, 3, 3)
    f = ops.setup_filter([1, 3, 3, 1])
    got = ops.conv2d_resample(x, w, f=f, up=2, padding=1, groups=groups, flip_weight=False)
    # Reference: FIR-upsample with the padding StyleGAN2 derives, then a true convolution.
    up = _naive_upfirdn(x, f, 2, [3, 2, 3, 2], 4.0)
    ref = F.conv2d(up, w.flip([2, 3]), groups=groups)
    assert got.shape == (2, 6, 12, 12)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_bias_act_lrelu_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5]])
    y = ops.bias_act(x, torch.tensor([1.0, 0.0]), act="lrelu", clamp=0.6)
    expected = torch.tensor([[-0.2 * math.sqrt(2), min(0.5 * math.sqrt(2), 0.6)]])
    torch.testing.assert_close(y, expected)


def test_camera_semantics():
    focal = 1 / (math.tan(18.837 * 3.14159 / 360) * 1.414)
    K = FOV_to_intrinsics(18.837)
    assert K[0, 0].item() == pytest.approx(focal) and K[0, 0].item() == pytest.approx(4.2634, abs=1e-4)
    c2w = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor([0.0, 0.0, 0.0]), radius=2.7)
    expected = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1]], dtype=torch.float32)
    torch.testing.assert_close(c2w[0], expected, atol=1e-6, rtol=0)
    c = camera_label(c2w, K)
    assert c.shape == (1, 25) and torch.equal(c[0, :16], c2w[0].flatten()) and torch.equal(c[0, 16:], K.flatten())
    # camera on the sphere about the origin, looking at the EG3D pivot
    c2w = LookAtPoseSampler.sample(math.pi / 2 + 0.3, math.pi / 2 - 0.2, torch.tensor([0, 0, 0.2]), radius=2.7)
    assert c2w[0, :3, 3].norm().item() == pytest.approx(2.7, abs=1e-5)
    forward = torch.tensor([0, 0, 0.2]) - c2w[0, :3, 3]
    torch.testing.assert_close(c2w[0, :3, 2], forward / forward.norm(), atol=1e-6, rtol=0)


def test_triplane_projection_keeps_the_released_weights_quirk():
    axes = generate_planes()
    assert torch.equal(axes[0], torch.eye(3))                         # XY
    assert axes[1].tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]      # XZ
    assert axes[2].tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]      # ZX, not YZ (eg3d#67)
