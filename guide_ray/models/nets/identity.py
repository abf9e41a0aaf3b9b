"""Identity embedders behind the `IdentityEmbedder` protocol: the ID loss and two ID metrics.

* `IRSE50Identity`: GUIDE's ID loss (IR-SE50 with the IDLoss face crop); differentiable.
* `CurricularFaceIdentity`: GUIDE's ID metric network (CurricularFace IR-101). GUIDE's metric
  aligns faces with MTCNN first: `guide_ray.metrics.identity.AlignedIdentity` does that and feeds
  this network pre-aligned crops (crop="none"); crop="idloss" is the crop-only approximation.
* `InsightFaceIdentity`: an insightface ArcFace ONNX model (e.g. buffalo_l's w600k_r50.onnx) run
  by onnxruntime on CPU; an extra, independent ID metric. Not differentiable.

All take [B, 3, H, W] RGB in [-1, 1] and return [B, 512] unit vectors (cosine = dot product).
Must not import ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.nets.base import FrozenNet
from guide_ray.models.nets.irse import Backbone, load_curricularface, load_ir_se50
from guide_ray.models.weights import INSIGHTFACE_ARCFACE

Crop = Literal["idloss", "none"]


def idloss_crop(x: Tensor, size: int = 112) -> Tensor:
    """GUIDE's IDLoss face crop: [B, 3, H, W] → [B, 3, size, size], values unchanged in range.

    Bilinear resize to 256x256 (align_corners=False, no antialias), keep rows 35:223 and columns
    32:220 (188x188, the face of an FFHQ-aligned image), adaptive average pool to size x size.
    """
    x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    x = x[:, :, 35:223, 32:220]                                    # [B, 3, 188, 188]
    return F.adaptive_avg_pool2d(x, (size, size))


def _crop_or_check(x: Tensor, crop: Crop, size: int) -> Tensor:
    if crop == "idloss":
        return idloss_crop(x, size)
    if x.shape[-2:] != (size, size):
        raise ValueError(f"crop='none' expects aligned {size}x{size} faces, got {tuple(x.shape[-2:])}")
    return x


class IRSE50Identity(FrozenNet):
    """GUIDE's ID-loss embedder: IDLoss crop → IR-SE50 → [B, 512] unit vectors. Differentiable in x.

    The network is frozen and in eval mode (dropout off, BatchNorm running stats); the official
    code leaves it trainable, which only accumulates unused gradients.
    """

    name = "irse50:idloss-crop"
    stand_in = False

    def __init__(self, facenet: Backbone) -> None:
        super().__init__()
        self.facenet = facenet
        self.freeze()

    @classmethod
    def from_file(cls, path: Path | str) -> IRSE50Identity:
        """Build from `model_ir_se50.pth` (see `load_ir_se50` for the errors raised)."""
        return cls(load_ir_se50(path))


    def forward(self, x: Tensor) -> Tensor:
        return self.facenet(idloss_crop(x))


class CurricularFaceIdentity(FrozenNet):
    """GUIDE's ID-metric embedder: CurricularFace IR-101 on a 112x112 face in [-1, 1].

    crop="none" takes faces the caller has already aligned to 112x112 (GUIDE's protocol, through
    metrics.identity.AlignedIdentity); crop="idloss" applies the ID-loss crop instead of alignment.
    """

    stand_in = False

    def __init__(self, facenet: Backbone, *, crop: Crop = "idloss") -> None:
        super().__init__()
        self.facenet = facenet
        self.crop = crop
        self.name = f"curricularface-ir101:{'idloss-crop-no-mtcnn' if crop == 'idloss' else 'pre-aligned'}"
        self.freeze()

    @classmethod
    def from_file(cls, path: Path | str, *, crop: Crop = "idloss") -> CurricularFaceIdentity:
        """Build from `CurricularFace_Backbone.pth` (see `load_curricularface` for errors)."""
        return cls(load_curricularface(path), crop=crop)


    def forward(self, x: Tensor) -> Tensor:
        return self.facenet(_crop_or_check(x, self.crop, 112))


class InsightFaceIdentity:
    """An insightface ArcFace ONNX model as an ID metric: [B, 3, H, W] in [-1, 1] → [B, 512].

    Loaded through `insightface.model_zoo.get_model` on onnxruntime's CPU provider. insightface
    decides from the graph whether normalisation is built in (mxnet exports start with Sub/Mul
    nodes: feed raw [0, 255] pixels) or not (feed (pixel - 127.5) / 127.5); we convert [-1, 1]
    to RGB pixels and let `ArcFaceONNX.forward` apply that choice. Faces get the ID-loss crop
    (no landmark alignment, see module docstring). The result is a plain tensor computed outside
    autograd: this embedder is NOT differentiable and must only be used as a metric.
    """

    stand_in = False

    def __init__(self, onnx_path: Path | str, *, crop: Crop = "idloss") -> None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise WeightsMissing(onnx_path, INSIGHTFACE_ARCFACE.how_to_get)
        self.model = _load_arcface_onnx(onnx_path)
        width, height = self.model.input_size
        if width != height:
            raise WeightsInvalid(f"{onnx_path}: expected a square face input, got {width}x{height}")
        self.size = int(width)
        self.crop = crop
        # A fixed batch dimension (an int) means the graph only takes that many faces per run.
        batch_dim = self.model.input_shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.name = f"insightface:{onnx_path.stem}:{'idloss-crop' if crop == 'idloss' else 'pre-aligned'}"

    def __call__(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            faces = _crop_or_check(x.detach().float(), self.crop, self.size)   # [B, 3, S, S]
            pixels = ((faces + 1) * 127.5).cpu().numpy()                     # RGB in [0, 255]
        # ArcFaceONNX.forward applies (pixels - input_mean) / input_std itself, then runs the graph.
        emb = np.concatenate([self.model.forward(chunk) for chunk in self._chunks(pixels)])
        emb_t = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)).to(x.device)
        return F.normalize(emb_t.flatten(1), dim=1)                         # [B, 512]

    def _chunks(self, pixels: np.ndarray) -> list[np.ndarray]:
        step = self.fixed_batch or len(pixels)
        if len(pixels) % step:
            raise ValueError(f"{self.name}: batch {len(pixels)} is not a multiple of the model's fixed batch {step}")
        return [pixels[i:i + step] for i in range(0, len(pixels), step)]


def _load_arcface_onnx(onnx_path: Path):  # -> insightface.model_zoo.ArcFaceONNX
    """insightface's router, CPU only, never downloading; anything but a recognition model is refused."""
    try:
        from insightface.model_zoo import get_model
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    except ImportError as exc:  # pragma: no cover - dependency pinned in pyproject
        raise ImportError("InsightFaceIdentity needs the 'insightface' and 'onnxruntime' packages") from exc
    try:
        model = get_model(str(onnx_path), providers=["CPUExecutionProvider"], download=False)
    except _onnx_load_errors() as exc:
        raise WeightsInvalid(f"{onnx_path}: onnxruntime cannot load it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, ArcFaceONNX):
        raise WeightsInvalid(
            f"{onnx_path}: insightface does not route it to a recognition (ArcFace) model "
            f"(got {type(model).__name__}); use a 112x112 → 512 recognition file such as w600k_r50.onnx"
        )
    return model


def _onnx_load_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt or foreign .onnx raises: onnxruntime's pybind errors derive from Exception only."""
    from google.protobuf.message import DecodeError
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    ort_errors = tuple(getattr(ort_state, n) for n in ("Fail", "InvalidArgument", "InvalidGraph",
                                                        "InvalidProtobuf", "NoSuchFile", "RuntimeException"))
    return (*ort_errors, DecodeError, AssertionError, OSError, ValueError)
