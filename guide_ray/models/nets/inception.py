"""Image feature extractors for FID: clean-fid's Inception from a local file, and a stand-in.

`InceptionFeatures` reproduces clean-fid's "clean" mode: each uint8 image is resized to 299x299
with PIL bicubic on float channels (clean-fid's own resizer), then fed as (x - 128) / 128 to
NVIDIA's TorchScript port of the TF Inception-v3 graph (`inception-2015-12-05.pt`), giving the
2048-d pool features. clean-fid would download that file into /tmp; here it is read only from the
weights directory, and because it is TorchScript (a program, not just tensors) it is
sha256-checked before `torch.jit.load`.

Note: GUIDE's evaluate_fid.py used pytorch-fid's Inception port with a torch bilinear resize; the
two extractors give close but not identical features (see docs/weights.md).

`StandInFeatures` is a seeded random CNN for the embedded default; its FIDs are labelled
stand-in and are not comparable with anything published. Must not import ray.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.nets.base import FrozenNet
from guide_ray.models.weights import INCEPTION, file_sha256

STANDIN_FEATURES_SEED = 20240618


@runtime_checkable
class FeatureExtractor(Protocol):
    """f(images): uint8 [B, 3, H, W] RGB (as saved PNGs) → float32 [B, dim] on the CPU."""

    name: str
    stand_in: bool
    dim: int

    def __call__(self, images: Tensor) -> Tensor: ...


def _check_uint8(images: Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 [B, 3, H, W] images, got {images.dtype} {tuple(images.shape)}")


class InceptionFeatures:
    """clean-fid Inception-v3 pool features (2048-d) of uint8 images, any input resolution.

    `sha256` is required on purpose: pass the published digest (the registry's) or, only for
    files you built yourself, None to skip the check. Raises WeightsMissing / WeightsInvalid.
    """

    name = "clean-fid-inception-v3"
    stand_in = False
    dim = 2048

    def __init__(self, path: Path | str, *, sha256: str | None, device: torch.device | str = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise WeightsMissing(path, INCEPTION.how_to_get)
        if sha256 is not None and (actual := file_sha256(path)) != sha256:
            raise WeightsInvalid(f"{path}: sha256 {actual} != published {sha256}; refusing to load TorchScript")
        try:
            with warnings.catch_warnings():        # torch 2.9+ deprecates TorchScript; this file is one
                warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.load.*")
                self.base = torch.jit.load(str(path), map_location=torch.device(device)).eval()
        except RuntimeError as exc:
            raise WeightsInvalid(f"{path}: not a TorchScript archive ({exc})") from exc
        if not hasattr(self.base, "layers"):
            raise WeightsInvalid(f"{path}: TorchScript module has no `layers` (not clean-fid's Inception)")
        from cleanfid.resize import build_resizer

        self.device = torch.device(device)
        self._resize = build_resizer("clean")          # uint8 HWC → float32 HWC 299x299, in [0, 255]

    def __call__(self, images: Tensor) -> Tensor:
        _check_uint8(images)
        hwc = images.permute(0, 2, 3, 1).cpu().numpy()                       # [B, H, W, 3] uint8
        resized = np.stack([self._resize(img) for img in hwc])                # [B, 299, 299, 3] float32
        x = torch.from_numpy(resized).permute(0, 3, 1, 2).to(self.device)     # [B, 3, 299, 299]
        with torch.no_grad():
            feats = self.base.layers((x - 128) / 128)                         # [B, 2048, 1, 1]
        return feats.reshape(len(images), self.dim).float().cpu()


class StandInFeatures(FrozenNet):
    """Seeded random CNN → `dim`-d features; for the embedded default only (labelled stand-in).

    A small `dim` keeps the covariance well-conditioned at the few hundred samples a CPU demo
    renders; FID needs more samples than dimensions to be full-rank.
    """

    stand_in = True

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.dim = dim
        self.name = f"stand-in:random-cnn-features-{dim}"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(STANDIN_FEATURES_SEED)
            chans = [3, 16, 32, 64]
            layers: list[nn.Module] = []
            for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
                layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], dim))
        self.freeze()

    def forward(self, images: Tensor) -> Tensor:
        _check_uint8(images)
        x = images.to(next(self.net.parameters()).device).float() / 127.5 - 1
        x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        with torch.no_grad():
            return self.net(x).float().cpu()                                  # [B, dim]
