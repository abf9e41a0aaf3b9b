"""FID_pre and ΔFID_real (GUIDE's distribution-preservation metrics), with a stats cache.

GUIDE's evaluate_fid.py renders 5000 samples from the pretrained and from the unlearned
generator (z ~ N(0, I), yaw ~ U(±π/12), pitch π/2 - 0.2, mapping conditioned on the frontal pose,
psi = 1, images saved as 8-bit PNGs), then reports
    FID_pre    = FID(pretrained samples, unlearned samples)
    ΔFID_real  = FID(real FFHQ, unlearned) - FID(real FFHQ, pretrained).
Here the samples are featurised in memory (quantised exactly as the PNGs were), every draw comes
from seeded torch.Generators, and the pretrained generator's statistics are cached on disk under
a fingerprint of everything they depend on, so they are computed once per (G, extractor, n, seed,
camera, batching, noise mode) for all identities. Must not import ray.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from guide_ray.config.base import StrictModel, fingerprint
from guide_ray.config.guide import CameraConfig
from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.eg3d.camera import frontal_camera, yaw_pitch_cameras
from guide_ray.models.nets.inception import FeatureExtractor
from guide_ray.models.weights import FFHQ_FEATS
from guide_ray.utils.files import atomic_file
from guide_ray.utils.images import quantize_like_png
from guide_ray.utils.seeding import derive_seed

log = logging.getLogger(__name__)

SQRTM_EPS = 1e-6          # pytorch-fid / clean-fid: diagonal offset when the covariance product is singular


@dataclass(frozen=True)
class FidStats:
    """Gaussian fit of a feature set: mean mu [D], covariance sigma [D, D], from n samples."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def from_features(cls, feats: np.ndarray) -> FidStats:
        """feats [N, D], N >= 2 → mean and unbiased covariance (np.cov, rowvar=False), float64."""
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2 or feats.shape[0] < 2:
            raise ValueError(f"need an [N >= 2, D] feature matrix, got shape {feats.shape}")
        return cls(feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False)), feats.shape[0])


def frechet_distance(a: FidStats, b: FidStats) -> float:
    """||mu_a - mu_b||² + Tr(S_a + S_b - 2 (S_a S_b)^½), the FID formula of pytorch-fid / clean-fid."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape} vs {b.mu.shape} (different extractors?)")
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


def fid_pre(stats_pretrained: FidStats, stats_unlearned: FidStats) -> float:
    """FID_pre: how far the unlearned generator's samples drifted from the pretrained ones (↓)."""
    return frechet_distance(stats_pretrained, stats_unlearned)


def delta_fid_real(real_stats: FidStats, stats_pre: FidStats, stats_unl: FidStats) -> float:
    """ΔFID_real = FID(real, unlearned) - FID(real, pretrained) (↓; 0 = no loss of realism)."""
    return frechet_distance(real_stats, stats_unl) - frechet_distance(real_stats, stats_pre)


def load_real_features(path: Path | str) -> FidStats:
    """Stats of GUIDE's `ffhq_real_feat.npy`, a per-image [N, 2048] feature matrix (not stats).

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
    return FidStats.from_features(feats)


class StatsKey(StrictModel):
    """Everything a generator's FID statistics depend on; its fingerprint names the cache file."""

    generator: str            # generator_fingerprint(G), or the sha256 of its weights file
    extractor: str            # FeatureExtractor.name
    n: int
    seed: int
    camera: CameraConfig
    batch_size: int           # noise / depth draws depend on how samples are batched
    noise_mode: str


class StatsCache:
    """Directory of `<fingerprint>.npz` files (mu, sigma, n, key); entries are never recomputed.

    Writes go through utils.files.atomic_file, so concurrent workers and crashes leave
    either no entry or a whole one; two workers racing on one key write identical content.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: StatsKey) -> Path:
        return self.root / f"{fingerprint(key)}.npz"

    def get(self, key: StatsKey) -> FidStats | None:
        path = self.path(key)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return FidStats(data["mu"], data["sigma"], int(data["n"]))

    def put(self, key: StatsKey, stats: FidStats) -> Path:
        final = self.path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        with atomic_file(final) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n),
                     key=np.array(json.dumps(key.model_dump(mode="json"), sort_keys=True)))
        return final

    def get_or_compute(self, key: StatsKey, compute: Callable[[], FidStats]) -> FidStats:
        """The cached stats for `key`, or `compute()` stored under it."""
        cached = self.get(key)
        if cached is not None:
            log.debug("FID stats cache hit %s", self.path(key).name)
            return cached
        stats = compute()
        self.put(key, stats)
        return stats


def generator_fingerprint(G: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes, bytes): identifies in-memory weights."""
    digest = hashlib.sha256()
    for name, tensor in G.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def generator_features(
    G: nn.Module, n: int, *, seed: int, camera: CameraConfig, extractor: FeatureExtractor,
    batch_size: int = 8, device: torch.device | str = "cpu", noise_mode: str = "random",
) -> np.ndarray:
    """Features [n, D] (float64) of n samples rendered as in GUIDE's evaluate_fid.

    z [n, z_dim] and yaw [n] come from a CPU torch.Generator seeded with `seed` (so they do not
    depend on the device or batch size); backbone noise and renderer depth draws come from a second,
    derived generator on `device`. G must already be on `device`; it is rendered in eval mode
    under no_grad and left in the mode it was in. The global RNG is not touched.
    """
    if n < 2:
        raise ValueError(f"FID needs at least 2 samples, got n={n}")
    device = torch.device(device)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=rng)                                     # [n, z_dim]
    yaw = (torch.rand(n, generator=rng) * 2 - 1) * camera.yaw_range                # [n] radians
    render_rng = torch.Generator(device).manual_seed(derive_seed(seed, "render"))
    was_training = G.training
    G.eval()
    try:
        feats = [
            _features_of_batch(G, z[i:i + batch_size].to(device), yaw[i:i + batch_size].to(device),
                               camera, extractor, render_rng, noise_mode)
            for i in range(0, n, batch_size)
        ]
    finally:
        G.train(was_training)
    return np.concatenate(feats).astype(np.float64)


def _features_of_batch(
    G: nn.Module, z: Tensor, yaw: Tensor, camera: CameraConfig, extractor: FeatureExtractor,
    render_rng: torch.Generator, noise_mode: str,
) -> np.ndarray:
    """One batch: frontal-conditioned mapping (psi = 1), render at a random yaw, quantise, featurise."""
    pitch = torch.pi / 2 + camera.pitch_offset                                      # polar angle
    c = yaw_pitch_cameras(yaw, pitch, camera.look_at_point, camera.radius, camera.fov_deg)      # [B, 25]
    c_front = frontal_camera(len(z), camera.look_at_point, camera.radius, camera.fov_deg, z.device)
    with torch.no_grad():
        ws = G.mapping(z, c_front, truncation_psi=1)                               # [B, num_ws, w_dim]
        img = G.synthesis(ws, c, noise_mode=noise_mode, generator=render_rng)["image"]   # [B, 3, R, R]
    return extractor(quantize_like_png(img)).numpy()
