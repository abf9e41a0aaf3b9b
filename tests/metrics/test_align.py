"""GUIDE's MTCNN face alignment on a real photograph, and the ID metric's fallback and count."""

from __future__ import annotations

import math

import pytest
import torch

from guide_ray.config.guide import CameraConfig
from guide_ray.metrics.align import REFERENCE_POINTS, align_faces, face_detector, similarity_transform, warp_affine
from guide_ray.metrics.identity import AlignedIdentity, id_score
from guide_ray.models.nets.identity import idloss_crop
from guide_ray.models.nets.standin import StandInIdentity


def _astronaut() -> torch.Tensor:
    """skimage's astronaut (Eileen Collins, NASA): one frontal face, 512×512 → [1, 3, 512, 512] in [-1, 1]."""
    from skimage.data import astronaut

    return torch.from_numpy(astronaut()).permute(2, 0, 1)[None].float() / 127.5 - 1


def _noise() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, 3, 512, 512, generator=g) * 0.3).clamp(-1, 1)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images = torch.cat([_astronaut(), _noise()])
    aligned, found = align_faces(images)
    return images, aligned, found


def test_a_real_face_is_found_and_a_noise_image_is_not(batch) -> None:
    _, aligned, found = batch
    assert found.tolist() == [True, False]
    assert aligned.shape == (2, 3, 112, 112) and aligned.dtype == torch.float32
    assert aligned.min() >= -1 and aligned.max() <= 1
    assert bool((aligned[1] == -1).all())                        # no face: black, the caller falls back


def test_the_aligned_face_has_its_eyes_on_the_reference_rows(batch) -> None:
    """Detect again on the aligned crop (upsampled 4× so MTCNN sees a normal-sized face): the eyes
    land on the 112×112 default_square reference points, and every landmark where the fitted
    similarity sends the photo's landmark (the warp does what the fit says)."""
    images, aligned, _ = batch
    original, _ = face_detector("cpu").landmarks((images[:1] * 127.5 + 128).clamp(0, 255).floor().permute(0, 2, 3, 1))
    M = similarity_transform(original, REFERENCE_POINTS[None])[0]
    expected = original[0] @ M[:, :2].T + M[:, 2]
    up = torch.nn.functional.interpolate(aligned[:1], scale_factor=4, mode="bilinear", align_corners=False)
    points, found = face_detector("cpu").landmarks((up * 127.5 + 128).clamp(0, 255).floor().permute(0, 2, 3, 1))
    assert found.tolist() == [True]
    points = (points[0] + 0.5) / 4 - 0.5                           # back to 112×112 pixel coordinates
    eyes, ref_eyes = points[:2], REFERENCE_POINTS[:2]
    assert (eyes[:, 1] - ref_eyes[:, 1]).abs().max() < 3.5        # eye rows (y ≈ 51.6)
    assert (eyes[:, 0] - ref_eyes[:, 0]).abs().max() < 3.5
    assert (points - expected).norm(dim=1).max() < 3.5             # nose and mouth corners too (MTCNN jitter)
    assert eyes[0, 0] < eyes[1, 0]                                # not mirrored


def test_similarity_fit_is_exact_for_a_similarity_and_never_reflects() -> None:
    angle, scale, shift = 0.3, 1.7, torch.tensor([5.0, -2.0])
    R = scale * torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = REFERENCE_POINTS[None]
    M = similarity_transform(src, src @ R.T + shift)
    torch.testing.assert_close(M[0], torch.cat([R, shift[:, None]], dim=1), atol=1e-4, rtol=0)
    mirrored = src.clone()
    mirrored[..., 0] = 112 - mirrored[..., 0]                     # the best fit to a mirror image
    M = similarity_transform(src, mirrored)
    assert torch.linalg.det(M[0, :, :2]) > 0                      # is still a rotation, not a reflection


def test_warp_moves_a_pixel_where_the_transform_says() -> None:
    image = torch.full((1, 1, 64, 64), -1.0)
    image[0, 0, 20, 10] = 1.0                                     # a bright pixel at (x=10, y=20)
    M = torch.tensor([[[1.0, 0.0, 7.0], [0.0, 1.0, -4.0]]])       # shift by (+7, -4)
    out = warp_affine(image, M, 32)
    assert out.shape == (1, 1, 32, 32)
    y, x = divmod(int(out[0, 0].argmax()), 32)
    assert (x, y) == (17, 16) and out[0, 0, 16, 17] == pytest.approx(1.0, abs=1e-5)
    assert out[0, 0, 0, 0] == pytest.approx(-1.0)                 # black outside


def test_aligned_metric_falls_back_to_the_id_loss_crop_and_says_so(batch) -> None:
    images, aligned, _ = batch
    embedder = StandInIdentity()
    metric = AlignedIdentity(embedder)
    emb, found = metric.embed(images)
    assert found.tolist() == [True, False] and metric.name.endswith(":mtcnn-aligned")
    torch.testing.assert_close(emb[0], embedder(aligned[:1])[0])
    torch.testing.assert_close(emb[1], embedder(idloss_crop(images[1:], 112))[0])


def test_id_score_counts_renders_without_a_face() -> None:
    """The tiny world's renders are not faces: every before and after render falls back and is counted."""
    from guide_ray.models.eg3d.presets import build_generator

    G = build_generator("tiny", seed=0)
    w = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)),
                  torch.zeros(1, G.c_dim))
    from guide_ray.backends.eg3d import yaw_sweep

    aligned = id_score(G, G, w, AlignedIdentity(StandInIdentity()), yaw_sweep(CameraConfig(), 3))
    plain = id_score(G, G, w, StandInIdentity(), yaw_sweep(CameraConfig(), 3))
    assert aligned.unaligned == 6 and plain.unaligned is None
    assert aligned.similarity == pytest.approx(1.0, abs=1e-5) and plain.similarity == pytest.approx(1.0, abs=1e-5)


# Golden values (CPU): MTCNN's landmarks on the astronaut with GUIDE's settings, the fitted
# similarity, and a slice of the aligned crop (row 56, columns 40:44, RGB).
GOLDEN_LANDMARKS = [[204.0162, 100.6557], [245.6715, 102.8598], [225.2782, 126.5317], [201.7197, 142.2704],
                    [244.0143, 142.0592]]
GOLDEN_M = [[0.875472, 0.038905, -144.98261], [-0.038905, 0.875472, -26.952948]]
GOLDEN_CROP = [0.462228, 0.548499, 0.516239, 0.423287, 0.247475, 0.305162, 0.263740, 0.121868, 0.123248,
               0.164448, 0.105757, -0.078753]


def test_alignment_golden_values(batch) -> None:
    images, aligned, _ = batch
    points, _ = face_detector("cpu").landmarks((images[:1] * 127.5 + 128).clamp(0, 255).floor().permute(0, 2, 3, 1))
    torch.testing.assert_close(points[0], torch.tensor(GOLDEN_LANDMARKS), atol=2e-3, rtol=0)
    M = similarity_transform(points, REFERENCE_POINTS[None])[0]
    torch.testing.assert_close(M, torch.tensor(GOLDEN_M), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(aligned[0, :, 56, 40:44].flatten(), torch.tensor(GOLDEN_CROP), atol=2e-4, rtol=0)
