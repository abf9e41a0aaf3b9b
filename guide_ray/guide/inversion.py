"""The source latent w_u: invert a face photo into EG3D's W+ space.

GUIDE needs one W+ code w_u [1, 14, 512] for the identity to forget. Two ways to get it:
* `GoaeInverter`: GUIDE's path (`unlearn.py --inversion goae`), one GOAE encoder forward,
  w_u = E(image) + w_avg. Eval mode by default; `train_mode=True` reproduces GUIDE, which never
  calls `.eval()` on the encoder, so its DropPath and dropout are active (here drawn from a seeded
  generator, so a seed reproduces the code).
* `ProjectionInverter`: optimisation-based W+ projection through the generator, for when no encoder
  is available (or for a generator the encoder was not trained with, such as the `tiny` preset).

`load_face_image` is the image edge: it refuses what GOAE cannot use with a `BadImage` naming the file.
No Ray, no global RNG, no prints here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from guide_ray.errors import BadImage
from guide_ray.models.eg3d.camera import camera_label, pose_from_angles
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.goae.encoder import GOAEncoder
from guide_ray.models.nets.base import PerceptualDistance

log = logging.getLogger(__name__)

ENCODER_SIZE = 256                   # GOAE's only input size (GUIDE resizes every photo to it)
NUM_WS, W_DIM = 14, 512              # W+ of EG3D's 256² tri-plane backbone
# GOAE's framing of FFHQ faces (jiangyzy/GOAE goae/infer.py): look-at point, radius, focal length.
GOAE_LOOKAT = (0.0, 0.0, 0.2)
GOAE_RADIUS = 2.7
GOAE_FOCAL = 4.2647                  # normalised focal length, 2985.29 / 700 from EG3D preprocessing


def load_face_image(path: Path | str) -> Tensor:
    """Read an EG3D-aligned face crop → [1, 3, 256, 256] float32 in [-1, 1].

    The file must be a square image of at least 256 px (the official data is 512x512 crops); it is
    converted to RGB, resized with PIL bicubic and scaled by /127.5 - 1, as GUIDE's `image_to_tensor`.
    Raises BadImage (naming the file, and the size where relevant) if it is missing, unreadable,
    not square or smaller than 256.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImage(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")   # decodes the whole file, so truncated data fails here
    except (OSError, ValueError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
        raise BadImage(f"{path}: cannot read as an image ({err})") from err
    width, height = rgb.size
    if width != height:
        raise BadImage(f"{path}: image is {width}x{height}, not square; GOAE needs an EG3D-aligned square "
                       "face crop (the official data is 512x512)")
    if width < ENCODER_SIZE:
        raise BadImage(f"{path}: image is {width}x{height}, smaller than the encoder's "
                       f"{ENCODER_SIZE}x{ENCODER_SIZE} input; use the EG3D-aligned 512x512 crop")
    rgb = rgb.resize((ENCODER_SIZE, ENCODER_SIZE), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8))               # [256, 256, 3]
    return (pixels.permute(2, 0, 1).float() / 127.5 - 1).unsqueeze(0)


@runtime_checkable
class Inverter(Protocol):
    """Photo → source latent. `invert(image [1, 3, H, W] in [-1, 1]) -> w_u [1, num_ws, 512]`.

    w_u is absolute W+ (offset + w_avg), ready for `G.synthesis`; num_ws is 14 for ffhq512-128 (and
    GOAE), 10 for the `tiny` preset's 64² tri-planes. `stand_in` marks results that are
    not comparable with the paper's (untrained or stand-in networks involved).
    """

    name: str
    stand_in: bool

    def invert(self, image: Tensor) -> Tensor: ...


def as_w_plus(w_avg: Tensor, num_ws: int = NUM_WS) -> Tensor:
    """w_avg as [512], [1, 512], [num_ws, 512] or [1, num_ws, 512] (GUIDE's file) → a [1, num_ws, 512] copy."""
    if w_avg.shape[-1] != W_DIM or w_avg.numel() not in (W_DIM, num_ws * W_DIM):
        raise ValueError(f"w_avg must hold 512 or {num_ws}x512 values, got shape {list(w_avg.shape)}")
    return w_avg.detach().reshape(1, -1, W_DIM).expand(1, num_ws, W_DIM).clone()


def _check_image(image: Tensor, size: int | None = None) -> None:
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected one image [1, 3, H, W], got {list(image.shape)}")
    if size is not None and tuple(image.shape[-2:]) != (size, size):
        raise ValueError(f"expected a {size}x{size} image (see load_face_image), got {list(image.shape[-2:])}")


class GoaeInverter:
    """w_u = GOAEncoder(image) + w_avg, GUIDE's inversion (`KHU-AGI/GUIDE unlearn.py:164-191`)."""

    stand_in = False

    def __init__(self, encoder: GOAEncoder, w_avg: Tensor, *, train_mode: bool = False,
                 generator: torch.Generator | None = None) -> None:
        """`w_avg` is EG3D's `G.backbone.mapping.w_avg` (any shape `as_w_plus` takes).

        train_mode=True reproduces GUIDE's stochastic inversion and needs `generator` (seeded by the
        caller, which records the seed); each `invert` call advances it.
        """
        if train_mode and generator is None:
            raise ValueError("train_mode=True draws DropPath/dropout masks: pass a seeded torch.Generator")
        self.encoder = encoder
        self.w_avg = as_w_plus(w_avg)
        self.train_mode = train_mode
        self.generator = generator if train_mode else None
        self.name = "goae-train-mode" if train_mode else "goae"

    @torch.no_grad()
    def invert(self, image: Tensor) -> Tensor:
        """image [1, 3, 256, 256] in [-1, 1] → w_u [1, 14, 512] on the encoder's device."""
        _check_image(image, ENCODER_SIZE)
        device = next(self.encoder.parameters()).device
        was_training = self.encoder.training
        self.encoder.train(self.train_mode)
        try:
            ws, _ = self.encoder(image.to(device), generator=self.generator)  # [1, 14, 512] offsets
        finally:
            self.encoder.train(was_training)
        return ws + self.w_avg.to(device)


def goae_frontal_camera(device: torch.device | str = "cpu") -> Tensor:
    """c [1, 25]: GOAE's frontal view (yaw = pitch = pi/2, radius 2.7, look-at (0, 0, 0.2), focal 4.2647)."""
    frontal = torch.full((1, 1), math.pi / 2, device=device)
    # pose_from_angles, not LookAtPoseSampler: the sampler draws (zero-scaled) global-RNG noise.
    cam2world = pose_from_angles(frontal, frontal, torch.tensor(GOAE_LOOKAT, device=device), GOAE_RADIUS)
    intrinsics = torch.tensor([[GOAE_FOCAL, 0, 0.5], [0, GOAE_FOCAL, 0.5], [0, 0, 1]], device=device)
    return camera_label(cam2world, intrinsics)


@dataclass(frozen=True)
class ProjectionResult:
    """w_u [1, num_ws, 512] and the evaluation loss before the first and after the last step."""

    w_u: Tensor
    start_loss: float
    end_loss: float
    step_losses: list[float]   # the optimisation loss of each step (its own renderer draws)


class ProjectionInverter:
    """Adam on a W+ code, from w_avg, to reconstruct the photo from GOAE's frontal camera.

    loss = perceptual(render, target) + lambda_l2 * MSE(render, target), the target resized to
    the generator's output size. The generator is only read: gradients are taken with respect to
    the code alone, so its weights, flags and `.grad` fields are left untouched. Every renderer
    draw comes from a generator seeded with `seed`; the same seed gives the same w_u.
    Defaults are ours (the paper does not project); `steps` trades quality for time.
    """

    name = "projection"

    def __init__(self, G: TriPlaneGenerator, perceptual: PerceptualDistance, *, steps: int = 500, lr: float = 0.01,
                 seed: int = 0, lambda_l2: float = 1.0) -> None:
        if steps < 0 or lr <= 0 or lambda_l2 < 0:
            raise ValueError(f"need steps >= 0, lr > 0, lambda_l2 >= 0; got {steps}, {lr}, {lambda_l2}")
        self.G, self.perceptual = G, perceptual
        self.steps, self.lr, self.seed, self.lambda_l2 = steps, lr, seed, lambda_l2
        self.stand_in = bool(perceptual.stand_in)

    def _loss(self, w: Tensor, target: Tensor, c: Tensor, rng: torch.Generator) -> Tensor:
        """Scalar reconstruction loss of code w [1, num_ws, 512] against target [1, 3, R, R]."""
        image = self.G.synthesis(w, c, noise_mode="const", generator=rng)["image"]   # [1, 3, R, R]
        return self.perceptual(image, target).mean() + self.lambda_l2 * F.mse_loss(image, target)

    def _evaluate(self, w: Tensor, target: Tensor, c: Tensor) -> float:
        """Loss with a freshly seeded renderer, so start and end see the same ray samples."""
        with torch.no_grad():
            return self._loss(w, target, c, self._rng(w.device)).item()

    def _rng(self, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.seed)

    def project(self, image: Tensor) -> ProjectionResult:
        """image [1, 3, H, W] in [-1, 1] → ProjectionResult with w_u on the generator's device."""
        _check_image(image)
        w_avg = self.G.backbone.mapping.w_avg                                      # [512]
        device, size = w_avg.device, self.G.img_resolution
        target = F.interpolate(image.to(device, torch.float32), size=(size, size), mode="bilinear",
                               align_corners=False, antialias=True)               # [1, 3, R, R]
        c = goae_frontal_camera(device)
        w = as_w_plus(w_avg, self.G.backbone.num_ws).requires_grad_(True)          # [1, num_ws, 512]
        opt = torch.optim.Adam([w], lr=self.lr)
        rng = self._rng(device)
        start = self._evaluate(w, target, c)
        step_losses = []
        for _ in range(self.steps):
            loss = self._loss(w, target, c, rng)
            w.grad = torch.autograd.grad(loss, [w])[0]
            opt.step()
            step_losses.append(loss.item())
        end = self._evaluate(w, target, c)
        log.info("W+ projection: %d steps, loss %.4f -> %.4f", self.steps, start, end)
        return ProjectionResult(w_u=w.detach(), start_loss=start, end_loss=end, step_losses=step_losses)

    def invert(self, image: Tensor) -> Tensor:
        """image [1, 3, H, W] in [-1, 1] → w_u [1, num_ws, 512] (absolute W+)."""
        return self.project(image).w_u
