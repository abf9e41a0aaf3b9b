"""Build the loss and metric networks for a backend, from the weights directory.

Stand-in backends (`tiny`, `stylegan2-tiny`; guide_ray.config.backends) get the labelled CPU
stand-ins and read no file; the `world` backend gets the networks trained in the synthetic world
(from `<weights_dir>/world/` or the package, hash-checked: guide_ray/world/shipped.py); the real backends get the real
networks. Nothing falls back silently: a real backend with a
missing or corrupt file raises WeightsMissing / WeightsInvalid naming the file. Hashes are
checked through `guide_ray.models.weights` wherever one is published. Must not import ray.
"""

from __future__ import annotations

from pathlib import Path

import torch

from guide_ray.config.backends import backend_info
from guide_ray.models import weights as weight_registry
from guide_ray.models.nets.base import IdentityEmbedder, LossNets
from guide_ray.models.nets.identity import Crop, CurricularFaceIdentity, InsightFaceIdentity, IRSE50Identity
from guide_ray.models.nets.inception import FeatureExtractor, InceptionFeatures, PytorchFidInception, StandInFeatures
from guide_ray.models.nets.perceptual import LpipsVGG
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual

__all__ = ["LossNets", "build_fid_extractor", "build_id_metric", "build_loss_nets"]


def build_loss_nets(backend: str, weights_dir: Path | str, device: torch.device | str) -> LossNets:
    """Stand-ins for a stand-in backend; LPIPS-VGG (vgg16-397923af.pth) + IR-SE50 (model_ir_se50.pth) otherwise."""
    weight_registry.needed_files(backend)                                   # validates the backend name
    nets = backend_info(backend).nets
    if nets == "stand-in":
        return LossNets(StandInPerceptual().to(device), StandInIdentity().to(device))
    if nets == "world":
        from guide_ray.world.nets import world_loss_nets
        from guide_ray.world.shipped import load_identity_net, world_source
        return world_loss_nets(load_identity_net("id_loss", world_source(weights_dir)).to(device))
    perceptual = LpipsVGG(weight_registry.resolve_file(weight_registry.VGG16.name, weights_dir)).to(device)
    identity = IRSE50Identity.from_file(weight_registry.resolve_file(weight_registry.IR_SE50.name, weights_dir)).to(device)
    return LossNets(perceptual, identity)


def build_id_metric(
    backend: str, weights_dir: Path | str, device: torch.device | str, kind: weight_registry.IdMetricKind = "curricularface",
    *, crop: Crop = "idloss",
) -> IdentityEmbedder:
    """The embedder behind ID / ID_others: CurricularFace (GUIDE's), insightface ArcFace, or IR-SE50.

    `crop` applies to CurricularFace: "none" when the caller aligns faces itself (the metric
    pipeline does, with MTCNN: guide_ray.metrics.identity.id_metric_for). For stand-in backends the stand-in
    embedder is returned whatever `kind` is; it says so in `stand_in`; for `world`, the world's
    `id_metric` network, whatever `kind` is. The insightface model runs
    on onnxruntime's CPU provider whatever `device` is.
    """
    weight_registry.needed_files(backend, id_metric=kind)                   # validates backend and kind
    nets = backend_info(backend).nets
    if nets == "stand-in":
        return StandInIdentity().to(device)
    if nets == "world":
        from guide_ray.world.nets import WorldIdentity
        from guide_ray.world.shipped import load_identity_net, world_source
        return WorldIdentity(load_identity_net("id_metric", world_source(weights_dir)).to(device), "id_metric")
    if kind == "curricularface":
        path = weight_registry.resolve_file(weight_registry.CURRICULARFACE.name, weights_dir)
        return CurricularFaceIdentity.from_file(path, crop=crop).to(device)
    if kind == "insightface":
        return InsightFaceIdentity(weight_registry.resolve_file(weight_registry.INSIGHTFACE_ARCFACE.name, weights_dir))
    return IRSE50Identity.from_file(weight_registry.resolve_file(weight_registry.IR_SE50.name, weights_dir)).to(device)


def build_fid_extractor(backend: str, weights_dir: Path | str, device: torch.device | str,
                        kind: weight_registry.FidExtractorKind = "pytorch-fid") -> FeatureExtractor:
    """pytorch-fid's Inception (GUIDE's; sha256 prefix checked) or clean-fid's TorchScript Inception
    (sha256-checked); for stand-in backends the stand-in, whatever `kind` is (it says so in `stand_in`);
    for `world`, the world's FID features whatever `kind` is (their name says so)."""
    weight_registry.needed_files(backend, fid_extractors=[kind])     # validates backend and kind
    nets = backend_info(backend).nets
    if nets == "stand-in":
        return StandInFeatures().to(device)
    if nets == "world":
        from guide_ray.world.nets import WorldFidFeatures
        from guide_ray.world.shipped import load_identity_net, world_source
        return WorldFidFeatures(load_identity_net("id_metric", world_source(weights_dir)).to(device))
    file = weight_registry.FID_EXTRACTOR_FILES[kind]
    path = weight_registry.resolve_file(file.name, weights_dir)      # verified; re-checked (cached) before loading
    if kind == "pytorch-fid":
        return PytorchFidInception.from_file(path, sha256_prefix=file.sha256_prefix).to(device)
    return InceptionFeatures(path, sha256=file.sha256, device=device)
