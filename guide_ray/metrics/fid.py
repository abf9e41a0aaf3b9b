"""FID_pre and ΔFID_real (GUIDE's distribution-preservation metrics), with a stats cache.

GUIDE's evaluate_fid.py renders 5000 samples from the pretrained and from the unlearned
generator (z ~ N(0, I), yaw ~ U(±π/12), pitch π/2 - 0.2, mapping conditioned on the frontal pose,
psi = 1, images saved as 8-bit PNGs), then reports
    FID_pre    = FID(pretrained samples, unlearned samples)
    ΔFID_real  = FID(real FFHQ, unlearned) - FID(real FFHQ, pretrained).
Here the samples are featurised in memory (quantised exactly as the PNGs were), every draw comes
from seeded torch.Generators, and the pretrained generator's statistics are cached on disk under
a fingerprint of everything they depend on, so they are computed once per (G, extractor, n, seed,
camera, batching, noise mode) for all identities.

How a sample is rendered comes from the backend (guide_ray.backends: `fid_render`); on EG3D it is
GUIDE's protocol above, on a 2D backend z → image (the yaw draw is made and ignored).

Pairing, as GUIDE's evaluate_fid.py: both generators see the same z and yaw sequence (one CPU
generator seeded with the FID seed), but each draws its own backbone noise and renderer depths
(a stream per generator role), so FID_pre has no artificial floor from shared noise. The camera
and noise mode are the identity's effective ones (what its unlearning used). Must not import ray.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from guide_ray.config.base import StrictModel, fingerprint
from guide_ray.config.guide import CameraConfig
from guide_ray.metrics.stats import FidStats, frechet_distance
from guide_ray.models.nets.inception import FeatureExtractor
from guide_ray.utils.images import quantize_like_png
from guide_ray.utils.seeding import derive_seed

log = logging.getLogger(__name__)

Role = Literal["pretrained", "unlearned"]   # names the generator's own noise / depth stream
# G, z [B, z_dim], yaw [B], render generator, noise mode → images [B, 3, R, R] (guide_ray.backends.SampleRender)
SampleRender = Callable[[nn.Module, Tensor, Tensor, torch.Generator, str], Tensor]


def fid_pre(stats_pretrained: FidStats, stats_unlearned: FidStats) -> float:
    """FID_pre: how far the unlearned generator's samples drifted from the pretrained ones (↓)."""
    return frechet_distance(stats_pretrained, stats_unlearned)


def delta_fid_real(real_stats: FidStats, stats_pre: FidStats, stats_unl: FidStats) -> float:
    """ΔFID_real = FID(real, unlearned) - FID(real, pretrained) (↓; 0 = no loss of realism)."""
    return frechet_distance(real_stats, stats_unl) - frechet_distance(real_stats, stats_pre)


class StatsKey(StrictModel):
    """Everything a generator's FID statistics depend on; its fingerprint names the cache file."""

    generator: str            # generator_fingerprint(G), or the sha256 of its weights file
    extractor: str            # FeatureExtractor.name
    n: int
    seed: int
    role: Role                # whose noise / depth stream rendered the samples
    camera: CameraConfig
    batch_size: int           # noise / depth draws depend on how samples are batched
    noise_mode: str


class StatsCache:
    """Directory of `<fingerprint>.npz` files (mu, sigma, n, extractor, key); entries are never recomputed.

    Writes go through utils.files.atomic_file, so concurrent workers and crashes leave
    either no entry or a whole one; two workers racing on one key write identical content.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, key: StatsKey) -> Path:
        return self.root / f"{fingerprint(key)}.npz"

    def get(self, key: StatsKey) -> FidStats | None:
        path = self.path(key)
        return FidStats.load(path) if path.is_file() else None

    def put(self, key: StatsKey, stats: FidStats) -> Path:
        return stats.save(self.path(key), key.model_dump(mode="json"))

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


def generator_stats(
    G: nn.Module, n: int, *, seed: int, role: Role, camera: CameraConfig, extractors: Sequence[FeatureExtractor],
    render: SampleRender, batch_size: int = 8, device: torch.device | str = "cpu", noise_mode: str = "random",
) -> dict[str, FidStats]:
    """FidStats of n samples of G per extractor (by name), rendered once (see generator_features)."""
    feats = generator_features(G, n, seed=seed, role=role, camera=camera, extractors=extractors, render=render,
                               batch_size=batch_size, device=device, noise_mode=noise_mode)
    return {name: FidStats.from_features(f, extractor=name) for name, f in feats.items()}


def generator_features(
    G: nn.Module, n: int, *, seed: int, role: Role, camera: CameraConfig, extractors: Sequence[FeatureExtractor],
    render: SampleRender, batch_size: int = 8, device: torch.device | str = "cpu", noise_mode: str = "random",
) -> dict[str, np.ndarray]:
    """Features [n, D] (float64) per extractor name of n samples rendered by `render` (the backend's;
    on EG3D as in GUIDE's evaluate_fid).

    z [n, z_dim] and yaw [n] come from a CPU torch.Generator seeded with `seed` (so they do not
    depend on the device, batch size or generator: pretrained and unlearned samples pair up);
    backbone noise and renderer depth draws come from a generator on `device` derived from `seed`
    and `role`, so the two generators draw independently. G must already be on `device`; it is
    rendered in eval mode under no_grad and left in the mode it was in. The global RNG is not touched.
    """
    if n < 2:
        raise ValueError(f"FID needs at least 2 samples, got n={n}")
    device = torch.device(device)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=rng)                                     # [n, z_dim]
    yaw = (torch.rand(n, generator=rng) * 2 - 1) * camera.yaw_range                # [n] radians
    render_rng = torch.Generator(device).manual_seed(derive_seed(seed, f"render:{role}"))
    was_training = G.training
    G.eval()
    try:
        batches = [
            _features_of_batch(G, z[i:i + batch_size].to(device), yaw[i:i + batch_size].to(device),
                               render, extractors, render_rng, noise_mode)
            for i in range(0, n, batch_size)
        ]
    finally:
        G.train(was_training)
    return {e.name: np.concatenate([b[e.name] for b in batches]).astype(np.float64) for e in extractors}


def _features_of_batch(
    G: nn.Module, z: Tensor, yaw: Tensor, render: SampleRender, extractors: Sequence[FeatureExtractor],
    render_rng: torch.Generator, noise_mode: str,
) -> dict[str, np.ndarray]:
    """One batch: render (psi = 1), quantise as the PNGs were, featurise."""
    with torch.no_grad():
        img = quantize_like_png(render(G, z, yaw, render_rng, noise_mode))
    return {e.name: e(img).numpy() for e in extractors}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def image_files(folder: Path) -> list[Path]:
    """Every image under `folder` (recursively), sorted. Raises ConfigError when there are fewer than 2."""
    from guide_ray.errors import ConfigError

    if not folder.is_dir():
        raise ConfigError(f"not a folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if len(files) < 2:
        raise ConfigError(f"{folder}: FID statistics need at least 2 images, found {len(files)}")
    return files


def folder_key(folder: Path, files: Sequence[Path], extractor: str) -> dict:
    """What real-image statistics depend on: the files (relative names, sizes, mtimes) and the extractor."""
    listing = [(p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return {"folder": str(folder), "files": fingerprint(listing), "n": len(files), "extractor": extractor}


def real_image_stats(files: Sequence[Path], extractor: FeatureExtractor, batch_size: int = 50) -> FidStats:
    """FidStats of real images, read as 8-bit RGB (what GUIDE's ToTensor sees); runs of equal-sized
    images are featurised together. Raises BadImage naming an unreadable file."""
    feats, batch, size = [], [], None
    for path in files:
        image = _read_rgb(path)
        if batch and (image.shape != size or len(batch) == batch_size):
            feats.append(extractor(torch.stack(batch)).numpy())
            batch = []
        batch.append(image)
        size = image.shape
    feats.append(extractor(torch.stack(batch)).numpy())
    return FidStats.from_features(np.concatenate(feats), extractor=extractor.name)


def _read_rgb(path: Path) -> Tensor:
    from PIL import Image

    from guide_ray.errors import BadImage

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage(f"{path}: cannot read as an image ({err})") from err
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)                   # [3, H, W] uint8
