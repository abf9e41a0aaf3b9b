"""ID / ID_others: identity cosine of the same latent before vs after unlearning, over the backend's views.

The views come from the backend (guide_ray.backends): on EG3D GUIDE's evaluation sweep (11 views,
yaw linspace(−pi/12, pi/12), pitch pi/2 − 0.2), on a 2D backend the single image. Images are
quantised to 8 bits as the saved PNGs are, one embedder for both renders. Lower = forgotten.
On real weights every render is MTCNN-aligned first (`AlignedIdentity`, GUIDE's IDSimNet); a
render without a detected face falls back to the ID-loss crop and is counted (`IdScore.unaligned`),
where GUIDE's code would crash. The embedded backends' embedders (stand-in, synthetic world) take the renders as they are.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.config.backends import backend_info
from guide_ray.metrics.align import align_faces
from guide_ray.models.nets.base import IdentityEmbedder
from guide_ray.models.nets.factory import build_id_metric
from guide_ray.models.nets.identity import idloss_crop
from guide_ray.utils.images import dequantize, quantize_like_png

N_VIEWS = 11          # GUIDE's yaw sweep; a 2D backend renders one view whatever this is
Views = Callable[[nn.Module, Tensor], Tensor]   # G, w [1, L, C] → images [V, 3, R, R] (guide_ray.backends.Views)


class AlignedIdentity:
    """GUIDE's ID-metric protocol: MTCNN-align each image onto 112×112, then embed (crop="none")."""

    def __init__(self, embedder: IdentityEmbedder) -> None:
        self.embedder = embedder
        self.name = f"{embedder.name.split(':')[0]}:mtcnn-aligned"
        self.stand_in = embedder.stand_in

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] in [-1, 1] → (embeddings [B, D], found [B] bool); no face → ID-loss crop."""
        aligned, found = align_faces(images)
        faces = torch.where(found[:, None, None, None], aligned, idloss_crop(images, aligned.shape[-1]))
        return self.embedder(faces), found

    def __call__(self, images: Tensor) -> Tensor:
        return self.embed(images)[0]


IdMetric = AlignedIdentity | IdentityEmbedder


def id_metric_for(backend: str, weights_dir: Path | str, device: torch.device | str) -> IdMetric:
    """The ID / ID_others metric of a backend: aligned CurricularFace on real weights; the stand-in, or
    the world's `id_metric` network, as they are on the embedded backends (guide_ray.config.backends):
    their renders are framed as their training images, so MTCNN has nothing to correct."""
    if backend_info(backend).embedded:
        return build_id_metric(backend, weights_dir, device)
    return AlignedIdentity(build_id_metric(backend, weights_dir, device, crop="none"))


@dataclass(frozen=True)
class IdScore:
    similarity: float          # mean cosine over the views
    unaligned: int | None      # renders (before and after each count) without a detected face; None = no alignment


def _embed(metric: IdMetric, images: Tensor) -> tuple[Tensor, int | None]:
    if isinstance(metric, AlignedIdentity):
        emb, found = metric.embed(images)
        return emb, int((~found).sum())
    return metric(images), None


@dataclass(frozen=True)
class ViewEmbeddings:
    """One generator's embeddings of one latent over the views, and how many renders were unaligned."""

    embeddings: Tensor         # [V, D]
    unaligned: int | None


@torch.no_grad()
def embed_views(G: nn.Module, w: Tensor, metric: IdMetric, views: Views) -> ViewEmbeddings:
    """f(G(w, view)) for every view, rendered and quantised as the saved PNGs are."""
    return ViewEmbeddings(*_embed(metric, dequantize(quantize_like_png(views(G, w)))))


@torch.no_grad()
def id_score(G_before: nn.Module, G_after: nn.Module, w: Tensor, metric: IdMetric, views: Views,
             before: ViewEmbeddings | None = None) -> IdScore:
    """Mean cosine between f(G_before(w, view)) and f(G_after(w, view)) over `views` (the backend's).

    `before`: G_before's embeddings of w when already known (BeforeCache); rendered here otherwise.
    """
    before = before or embed_views(G_before, w, metric, views)
    after = embed_views(G_after, w, metric, views)
    unaligned = None if before.unaligned is None else before.unaligned + after.unaligned
    return IdScore(float((before.embeddings * after.embeddings).sum(dim=1).mean()), unaligned)


def id_similarity(G_before: nn.Module, G_after: nn.Module, w: Tensor, metric: IdMetric, views: Views) -> float:
    """`id_score`'s similarity alone."""
    return id_score(G_before, G_after, w, metric, views).similarity


class BeforeCache:
    """The frozen generator's view embeddings per (latent, views): the 'before' half of ID / ID_others.

    They depend only on G_s, the latent and the views, so the variants of one identity and the Tune
    trials on one validation identity share them. One cache per G_s and metric (the worker's);
    `views_key` must name the views (e.g. the camera config's fingerprint and the view count).
    Least recently used entries are dropped past `limit`.
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, str], ViewEmbeddings] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, G_before: nn.Module, w: Tensor, metric: IdMetric, views: Views, views_key: str) -> ViewEmbeddings:
        key = (views_key, hashlib.sha256(w.detach().float().cpu().numpy().tobytes()).hexdigest())
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key]
        self.misses += 1
        value = self._items[key] = embed_views(G_before, w, metric, views)
        if len(self._items) > self.limit:
            self._items.popitem(last=False)
        return value
