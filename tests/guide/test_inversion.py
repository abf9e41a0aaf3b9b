"""Inversion: image loading edge cases, the GOAE inverter's modes, W+ projection on the tiny EG3D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guide_ray.errors import BadImage
from guide_ray.guide.inversion import (
    GoaeInverter,
    Inverter,
    ProjectionInverter,
    goae_frontal_camera,
    load_face_image,
)
from guide_ray.models.goae import GOAEncoder, SwinV2Config


def _save(path: Path, size: tuple[int, int], channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random pixels of `size` (width, height); 1, 3 or 4 channels give L, RGB or RGBA files."""
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


# --- load_face_image -------------------------------------------------------------------------------

def test_256_image_is_scaled_exactly(tmp_path: Path) -> None:
    pixels = _save(tmp_path / "face.png", (256, 256))
    x = load_face_image(tmp_path / "face.png")
    assert x.shape == (1, 3, 256, 256) and x.dtype == torch.float32
    want = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(x[0], want)
    assert x.min() >= -1 and x.max() <= 1


def test_512_crop_is_resized_bicubic(tmp_path: Path) -> None:
    pixels = _save(tmp_path / "face.png", (512, 512), seed=1)
    x = load_face_image(tmp_path / "face.png")
    resized = np.array(Image.fromarray(pixels).resize((256, 256), Image.Resampling.BICUBIC))
    assert torch.equal(x[0], torch.from_numpy(resized).permute(2, 0, 1).float() / 127.5 - 1)
    nearest = np.array(Image.fromarray(pixels).resize((256, 256), Image.Resampling.NEAREST))
    assert not np.array_equal(resized, nearest)   # the filter choice is observable


@pytest.mark.parametrize("channels", [1, 4])
def test_grey_and_rgba_become_rgb(tmp_path: Path, channels: int) -> None:
    _save(tmp_path / "face.png", (300, 300), channels=channels)
    assert load_face_image(tmp_path / "face.png").shape == (1, 3, 256, 256)


@pytest.mark.parametrize(("size", "needle"), [((512, 400), "512x400, not square"), ((128, 128), "128x128, smaller")])
def test_wrong_geometry_is_refused(tmp_path: Path, size: tuple[int, int], needle: str) -> None:
    _save(tmp_path / "face.png", size)
    with pytest.raises(BadImage, match=needle) as err:
        load_face_image(tmp_path / "face.png")
    assert "face.png" in str(err.value)


def test_missing_unreadable_and_truncated_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadImage, match="missing.png: no such image"):
        load_face_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(BadImage, match="notes.png: cannot read"):
        load_face_image(tmp_path / "notes.png")
    _save(tmp_path / "cut.png", (256, 256))
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImage, match="cut.png: cannot read"):
        load_face_image(tmp_path / "cut.png")


# --- GoaeInverter ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_encoder() -> GOAEncoder:
    """GOAE's heads on a shallower Swin (stage 2 depth 2, not 18): the inverter logic is the same."""
    torch.manual_seed(0)
    encoder = GOAEncoder(SwinV2Config(depths=(2, 2, 2, 2))).eval()
    with torch.no_grad():   # unit res-post-norms so the Swin blocks (and their DropPath) do something
        for name, p in encoder.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight")):
                p.fill_(1.0)
    return encoder


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    return torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(3)) * 2 - 1


@pytest.fixture(scope="module")
def w_avg() -> torch.Tensor:
    return torch.randn(512, generator=torch.Generator().manual_seed(4))


def test_goae_eval_is_deterministic_and_adds_w_avg(small_encoder: GOAEncoder, face: torch.Tensor,
                                                   w_avg: torch.Tensor) -> None:
    inverter = GoaeInverter(small_encoder, w_avg)
    assert isinstance(inverter, Inverter) and inverter.name == "goae" and not inverter.stand_in
    w_u = inverter.invert(face)
    assert w_u.shape == (1, 14, 512)
    assert torch.equal(w_u, inverter.invert(face))
    with torch.no_grad():
        ws, _ = small_encoder(face)
    assert torch.equal(w_u, ws + w_avg)
    guide_file_shape = GoaeInverter(small_encoder, w_avg.expand(14, 512))   # w_avg_ffhqrebalanced512-128.pt
    assert torch.equal(guide_file_shape.w_avg, inverter.w_avg)


def test_goae_train_mode_is_seeded(small_encoder: GOAEncoder, face: torch.Tensor, w_avg: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="Generator"):
        GoaeInverter(small_encoder, w_avg, train_mode=True)

    def run(seed: int) -> torch.Tensor:
        inv = GoaeInverter(small_encoder, w_avg, train_mode=True, generator=torch.Generator().manual_seed(seed))
        assert inv.name == "goae-train-mode"
        return inv.invert(face)

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-4)
    assert not torch.allclose(a, GoaeInverter(small_encoder, w_avg).invert(face), atol=1e-4)
    assert not small_encoder.training          # the encoder's own mode is restored


def test_goae_rejects_wrong_inputs(small_encoder: GOAEncoder, w_avg: torch.Tensor) -> None:
    inverter = GoaeInverter(small_encoder, w_avg)
    with pytest.raises(ValueError, match="256x256"):
        inverter.invert(torch.zeros(1, 3, 512, 512))
    with pytest.raises(ValueError, match="one image"):
        inverter.invert(torch.zeros(2, 3, 256, 256))
    with pytest.raises(ValueError, match="w_avg"):
        GoaeInverter(small_encoder, torch.zeros(3, 512))


# --- ProjectionInverter on the tiny EG3D preset ----------------------------------------------------

def test_goae_frontal_camera_is_goaes_c_front() -> None:
    c_front = torch.tensor([[1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1,
                             4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]])   # jiangyzy/GOAE training/goae.py
    torch.testing.assert_close(goae_frontal_camera(), c_front, rtol=0, atol=1e-6)


def test_projection_rejects_bad_settings(perceptual: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="lr > 0"):
        ProjectionInverter(torch.nn.Identity(), perceptual, lr=0.0)


@pytest.fixture(scope="module")
def tiny_G() -> torch.nn.Module:
    from guide_ray.models.eg3d.presets import build_generator
    return build_generator("tiny", seed=0)


@pytest.fixture(scope="module")
def perceptual() -> torch.nn.Module:
    from guide_ray.models.nets.standin import StandInPerceptual
    return StandInPerceptual()


@pytest.fixture(scope="module")
def rendered_face(tiny_G: torch.nn.Module) -> torch.Tensor:
    """A 256² 'photo' rendered from a known latent of the tiny generator, from GOAE's frontal view."""
    c = goae_frontal_camera()
    z = torch.randn(1, tiny_G.z_dim, generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        ws = tiny_G.mapping(z, c)
        image = tiny_G.synthesis(ws, c, noise_mode="const", generator=torch.Generator().manual_seed(12))["image"]
    return torch.nn.functional.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)


def test_projection_reduces_loss_and_leaves_G_alone(tiny_G: torch.nn.Module, perceptual: torch.nn.Module,
                                                    rendered_face: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in tiny_G.state_dict().items()}
    flags = {k: p.requires_grad for k, p in tiny_G.named_parameters()}
    inverter = ProjectionInverter(tiny_G, perceptual, steps=30, lr=0.02, seed=0)
    assert isinstance(inverter, Inverter) and inverter.stand_in
    result = inverter.project(rendered_face)
    num_ws = tiny_G.backbone.num_ws      # 10 for the tiny preset's 64² tri-planes
    assert result.w_u.shape == (1, num_ws, 512) and torch.isfinite(result.w_u).all()
    assert len(result.step_losses) == 30
    # From w_avg to 30 Adam steps later, both evaluated with the same renderer draws. Measured on
    # CPU (torch 2.14): 0.1439 -> ~0.004; an optimiser that does not descend fails this.
    assert result.end_loss < 0.25 * result.start_loss, (result.start_loss, result.end_loss)
    w_avg = tiny_G.backbone.mapping.w_avg
    assert not torch.allclose(result.w_u, w_avg.expand(1, num_ws, 512))
    for k, v in tiny_G.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in tiny_G.parameters())
    assert {k: p.requires_grad for k, p in tiny_G.named_parameters()} == flags


def test_projection_same_seed_same_w_u(tiny_G: torch.nn.Module, perceptual: torch.nn.Module,
                                       rendered_face: torch.Tensor) -> None:
    def run(seed: int) -> torch.Tensor:
        return ProjectionInverter(tiny_G, perceptual, steps=3, lr=0.02, seed=seed).invert(rendered_face)

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)     # the seed drives the renderer's depth samples
