"""FID statistics and the Fréchet distance, with the extractor that produced them.

Two Inception ports (pytorch-fid's, GUIDE's; clean-fid's TorchScript) give close but different
features, and the offset does not cancel in a difference of FIDs. So every `FidStats` records its
extractor and `frechet_distance` refuses to compare statistics of two extractors.

Real-image statistics come from GUIDE's `ffhq_real_feat.npy` (a per-image pytorch-fid feature
matrix) or from a `.npz` written by `guide-ray fid-stats` (mu, sigma, n, extractor, key).
numpy / scipy only: the job checks read a stats file's extractor without importing torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

from guide_ray.config.job import FidSpec
from guide_ray.config.metrics import needing
from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.weights import FFHQ_FEATS, FID_EXTRACTOR_NAMES, GUIDE_REAL_FEATURES_EXTRACTOR
from guide_ray.utils.files import atomic_file

log = logging.getLogger(__name__)

SQRTM_EPS = 1e-6          # pytorch-fid / clean-fid: diagonal offset when the covariance product is singular


@dataclass(frozen=True)
class FidStats:
    """Gaussian fit of a feature set: mean mu [D], covariance sigma [D, D], from n samples of `extractor`."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    extractor: str            # FeatureExtractor.name, e.g. "pytorch-fid-inception-v3"

    @classmethod
    def from_features(cls, feats: np.ndarray, *, extractor: str) -> FidStats:
        """feats [N, D], N >= 2 → mean and unbiased covariance (np.cov, rowvar=False), float64."""
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f"need an [N >= 2, D] feature matrix, got shape {feats.shape}")
        return cls(feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False)), feats.shape[0], extractor)

    def save(self, path: Path, key: dict | None = None) -> Path:
        """`.npz` with mu, sigma, n, extractor and the JSON `key` it was computed for; atomic."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu=self.mu, sigma=self.sigma, n=np.int64(self.n), extractor=np.array(self.extractor),
                     key=np.array(json.dumps(key or {}, sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: Path) -> FidStats:
        """Read a `save`d file (allow_pickle=False). Raises WeightsInvalid naming the file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["mu"], data["sigma"], int(data["n"]), str(data["extractor"]))
        except (KeyError, ValueError, OSError) as exc:
            raise WeightsInvalid(f"{path}: not a guide-ray FID statistics file ({exc})") from exc


def saved_key(path: Path) -> dict | None:
    """The `key` a statistics file was computed for (None when the file does not exist)."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["key"]))


def frechet_distance(a: FidStats, b: FidStats) -> float:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½), the FID formula of pytorch-fid / clean-fid.

    Raises ValueError naming both extractors when `a` and `b` come from different ones.
    """
    if a.extractor != b.extractor:
        raise ValueError(f"FID between features of two extractors: {a.extractor!r} vs {b.extractor!r}; "
                         "compute both sides with one extractor")
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma)     # warns (LinAlgWarning) when near-singular
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %g to the diagonals", SQRTM_EPS)
        offset = np.eye(a.sigma.shape[0]) * SQRTM_EPS
        covmean = scipy.linalg.sqrtm((a.sigma + offset) @ (b.sigma + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))


def load_real_features(path: Path | str) -> FidStats:
    """Stats of GUIDE's `ffhq_real_feat.npy`, a per-image [N, 2048] pytorch-fid feature matrix.

    Loaded with allow_pickle=False. Raises WeightsMissing / WeightsInvalid.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, FFHQ_FEATS.how_to_get)
    try:
        feats = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise WeightsInvalid(f"{path}: not a plain numeric .npy array ({exc})") from exc
    if feats.ndim != 2 or feats.shape[0] < 2 or not np.issubdtype(feats.dtype, np.floating):
        raise WeightsInvalid(f"{path}: expected an [N, D] float feature matrix, got {feats.dtype} {feats.shape}")
    return FidStats.from_features(feats, extractor=FID_EXTRACTOR_NAMES[GUIDE_REAL_FEATURES_EXTRACTOR])


def load_real_stats(path: Path | str) -> FidStats:
    """Real-image statistics: GUIDE's `.npy` feature matrix, or a `guide-ray fid-stats` `.npz`."""
    path = Path(path)
    if path.suffix == ".npy":
        return load_real_features(path)
    if not path.is_file():
        raise WeightsMissing(path, "compute it with `guide-ray fid-stats REAL_DIR -o STATS`")
    return FidStats.load(path)


def extractor_kind(name: str) -> str:
    """'pytorch-fid' / 'clean-fid' for a recorded extractor name; ValueError for anything else."""
    for kind, known in FID_EXTRACTOR_NAMES.items():
        if known == name:
            return kind
    raise ValueError(f"statistics of extractor {name!r}; expected one of {sorted(FID_EXTRACTOR_NAMES.values())}")


def real_stats_extractor(real_stats: str | None) -> str:
    """The extractor kind of a job's real statistics: recorded in a fid-stats file; pytorch-fid for
    GUIDE's ffhq_real_feat.npy (real_stats None or a .npy)."""
    if real_stats is None or Path(real_stats).suffix == ".npy":
        return GUIDE_REAL_FEATURES_EXTRACTOR
    return extractor_kind(load_real_stats(real_stats).extractor)


@dataclass(frozen=True)
class FidPlan:
    """Which extractor each requested FID uses (kinds: 'pytorch-fid' / 'clean-fid'; None = not requested)."""

    real: str | None                # ΔFID_real: the extractor of the real statistics
    pre: str | None                 # FID_pre: the job's choice, default the same as `real`
    guide_real_features: bool       # ΔFID_real reads GUIDE's ffhq_real_feat.npy from the weights folder

    @property
    def kinds(self) -> list[str]:
        return list(dict.fromkeys(k for k in (self.real, self.pre) if k is not None))


def fid_plan(fid: FidSpec, metrics: tuple[str, ...] | list[str]) -> FidPlan:
    """The FidPlan of a job's `fid` section and metric list (reads a fid-stats file's header)."""
    wants_real = bool(needing("real_stats", metrics))
    wants_pre = any("samples" in m.needs and "real_stats" not in m.needs for m in needing("samples", metrics))
    real = real_stats_extractor(fid.real_stats) if wants_real or fid.extractor is None else None
    pre = (fid.extractor or real) if wants_pre else None
    return FidPlan(real if wants_real else None, pre, wants_real and fid.real_stats is None)
