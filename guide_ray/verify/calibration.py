"""The match threshold of a verdict: calibrated at a false-accept rate on different-identity pairs.

Why a calibrated threshold: "ID went down" is not a privacy claim; "no attack brings the identity
above the score at which the metric would accept two different people as one at FAR 1e-3" is.
Pure functions of embeddings, so a backend that can render a population of distinct identities
(guide_ray.backends.GeneratorBackend.calibration_latents) gets a threshold for free.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def impostor_scores(embeddings: Tensor, pose_embeddings: Tensor | None = None) -> Tensor:
    """Scores of every pair of distinct identities → [N(N-1)/2]. embeddings [N, D] or [N, V, D]
    (L2-normalised; V views per identity): the mean cosine of a pair's same-view embeddings, as the
    attacks' scores are (guide_ray.verify.attacks.Scorer). pose_embeddings [N, P, D] (the pose
    sweep's P poses): the pair scores the larger of that mean and its best same-pose cosine: the
    worst case over attacks includes the pose sweep's best pose, so strangers get the same search
    (config.verify.CALIBRATION_STATISTIC names this in every row and verify_key)."""
    if embeddings.ndim == 2:
        embeddings = embeddings[:, None]
    if embeddings.ndim != 3 or len(embeddings) < 2:
        raise ValueError(f"need embeddings [N >= 2, D] or [N >= 2, V, D], got {list(embeddings.shape)}")
    i, j = torch.triu_indices(len(embeddings), len(embeddings), offset=1)
    scores = (torch.einsum("ivd,jvd->ij", embeddings, embeddings) / embeddings.shape[1])[i, j]
    if pose_embeddings is not None:
        if pose_embeddings.ndim != 3 or len(pose_embeddings) != len(embeddings):
            raise ValueError(f"pose_embeddings must be [N={len(embeddings)}, P, D], got {list(pose_embeddings.shape)}")
        best_pose = torch.einsum("ipd,jpd->ijp", pose_embeddings, pose_embeddings).amax(dim=2)[i, j]
        scores = torch.maximum(scores, best_pose.to(scores.dtype))
    return scores


def far_threshold(embeddings: Tensor, far: float, pose_embeddings: Tensor | None = None) -> float:
    """The lowest threshold t such that at most floor(far · pairs) different-identity pairs score
    above t (a match is `score > t`). embeddings [N, (V,) D], one row per distinct identity;
    pose_embeddings as in impostor_scores.

    Raises ValueError when there are fewer than 1/far pairs (the rate could not be resolved).
    """
    scores = impostor_scores(embeddings, pose_embeddings).double().sort(descending=True).values
    allowed = math.floor(far * len(scores))
    if allowed < 1:
        raise ValueError(f"{len(scores)} different-identity pairs cannot resolve FAR {far:g}; "
                         f"need at least {math.ceil(1 / far)}")
    return float(scores[allowed])
