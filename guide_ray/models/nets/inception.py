"""Image feature extractors for FID: pytorch-fid's and clean-fid's Inception from local files, a stand-in.

`PytorchFidInception` is the extractor of GUIDE's evaluate_fid.py and of its ffhq_real_feat.npy:
pytorch-fid's FID Inception-v3 (torchvision's Inception3 with the FIDInceptionA/C/E blocks, the
module classes of the `pytorch-fid` package), weights `pt_inception-2015-12-05-6726825d.pth` read
from the weights folder with weights_only=True after checking the sha256 prefix 6726825d that
pytorch-fid publishes in the file name; pytorch-fid itself would download the file. Input as
GUIDE's: the 8-bit image as [0, 1], bilinear resize to 299 (align_corners=False), 2x - 1, pool3.

`InceptionFeatures` reproduces clean-fid's "clean" mode: each uint8 image is resized to 299x299
with PIL bicubic on float channels (clean-fid's own resizer), then fed as (x - 128) / 128 to
NVIDIA's TorchScript port of the TF Inception-v3 graph (`inception-2015-12-05.pt`), giving the
2048-d pool features. clean-fid would download that file into /tmp; here it is read only from the
weights directory, and because it is TorchScript (a program, not just tensors) it is
sha256-checked before `torch.jit.load`.

The two ports give close but not identical features, so every FID compares features of one
extractor (FidStats records it; frechet_distance refuses a mix).

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
from guide_ray.models.weights import FID_EXTRACTOR_NAMES, INCEPTION, PT_INCEPTION
from guide_ray.utils.files import file_sha256

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

    name = FID_EXTRACTOR_NAMES["clean-fid"]
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


def fid_inception_v3() -> nn.Module:
    """pytorch-fid's FID Inception-v3 module tree (randomly initialised; the caller loads weights)."""
    import torchvision
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


class PytorchFidInception(FrozenNet):
    """pytorch-fid's Inception-v3 pool3 features (2048-d) of uint8 images; see the module docstring."""

    name = FID_EXTRACTOR_NAMES["pytorch-fid"]
    stand_in = False
    dim = 2048

    def __init__(self, inception: nn.Module) -> None:
        super().__init__()
        self.inception = inception
        self.freeze()

    @classmethod
    def from_file(cls, path: Path | str, *, sha256_prefix: str | None) -> PytorchFidInception:
        """Build from the FID weights file. `sha256_prefix` is required on purpose: the published
        one (PT_INCEPTION.sha256_prefix), or None only for a file you built yourself.
        Raises WeightsMissing / WeightsInvalid (wrong hash, not a state dict, wrong keys or shapes)."""
        path = Path(path)
        if not path.is_file():
            raise WeightsMissing(path, PT_INCEPTION.how_to_get)
        if sha256_prefix is not None and not (actual := file_sha256(path)).startswith(sha256_prefix):
            raise WeightsInvalid(f"{path}: sha256 {actual} does not start with the published {sha256_prefix}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a foreign or corrupt file
            raise WeightsInvalid(f"{path}: not a torch state_dict ({type(exc).__name__}: {exc})") from exc
        if not isinstance(state, dict):
            raise WeightsInvalid(f"{path}: expected a state_dict, got {type(state).__name__}")
        net = fid_inception_v3()
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsInvalid(f"{path}: not pytorch-fid's Inception weights ({exc})") from exc
        return cls(net)

    def forward(self, images: Tensor) -> Tensor:
        _check_uint8(images)
        net = self.inception
        x = images.to(net.Conv2d_1a_3x3.conv.weight.device).float() / 255                # as ToTensor()
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
        with torch.no_grad():
            x = net.maxpool1(net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x))))     # block 0
            x = net.maxpool2(net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x)))                          # block 1
            for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                         "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):                      # blocks 2, 3
                x = getattr(net, name)(x)
            x = F.adaptive_avg_pool2d(x, 1)
        return x.reshape(len(images), self.dim).float().cpu()


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
