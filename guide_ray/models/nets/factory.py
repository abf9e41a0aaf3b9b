"""Build the loss and metric networks for a backend, from the weights directory.

`tiny` (the embedded default) gets the labelled CPU stand-ins and reads no file;
`eg3d-ffhq512-128` gets the real networks. Nothing falls back silently: a real backend with a
missing or corrupt file raises WeightsMissing / WeightsInvalid naming the file. Hashes are
checked through `guide_ray.models.weights` wherever one is published. Must not import ray.
"""

from __future__ import annotations

from pathlib import Path

import torch

from guide_ray.models import weights as W
from guide_ray.models.nets.base import IdentityEmbedder, LossNets
from guide_ray.models.nets.identity import CurricularFaceIdentity, InsightFaceIdentity, IRSE50Identity
from guide_ray.models.nets.inception import FeatureExtractor, InceptionFeatures, StandInFeatures
from guide_ray.models.nets.perceptual import LpipsVGG
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual

__all__ = ["LossNets", "build_fid_extractor", "build_id_metric", "build_loss_nets"]


def build_loss_nets(backend: str, weights_dir: Path | str, device: torch.device | str) -> LossNets:
    """Stand-ins for `tiny`; LPIPS-VGG (vgg16-397923af.pth) + IR-SE50 (model_ir_se50.pth) otherwise."""
    W.needed_files(backend)                                   # validates the backend name
    if backend == "tiny":
        return LossNets(StandInPerceptual().to(device), StandInIdentity().to(device))
    perceptual = LpipsVGG(W.resolve_file(W.VGG16.name, weights_dir)).to(device)
    identity = IRSE50Identity.from_file(W.resolve_file(W.IR_SE50.name, weights_dir)).to(device)
    return LossNets(perceptual, identity)


def build_id_metric(
    backend: str, weights_dir: Path | str, device: torch.device | str, kind: W.IdMetricKind = "curricularface"
) -> IdentityEmbedder:
    """The embedder behind ID / ID_others: CurricularFace (GUIDE's), insightface ArcFace, or IR-SE50.

    For `tiny` the stand-in embedder is returned whatever `kind` is; it says so in `stand_in`.
    The insightface model runs on onnxruntime's CPU provider whatever `device` is.
    """
    W.needed_files(backend, id_metric=kind)                   # validates backend and kind
    if backend == "tiny":
        return StandInIdentity().to(device)
    if kind == "curricularface":
        return CurricularFaceIdentity.from_file(W.resolve_file(W.CURRICULARFACE.name, weights_dir)).to(device)
    if kind == "insightface":
        return InsightFaceIdentity(W.resolve_file(W.INSIGHTFACE_ARCFACE.name, weights_dir))
    return IRSE50Identity.from_file(W.resolve_file(W.IR_SE50.name, weights_dir)).to(device)


def build_fid_extractor(backend: str, weights_dir: Path | str, device: torch.device | str) -> FeatureExtractor:
    """clean-fid Inception (inception-2015-12-05.pt, sha256-checked) or, for `tiny`, the stand-in."""
    W.needed_files(backend)
    if backend == "tiny":
        return StandInFeatures().to(device)
    path = W.resolve_file(W.INCEPTION.name, weights_dir)       # verified; re-checked (cached) before jit.load
    return InceptionFeatures(path, sha256=W.INCEPTION.sha256, device=device)
