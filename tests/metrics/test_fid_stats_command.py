"""`guide-ray fid-stats REAL_DIR -o STATS`: real-image statistics with their extractor, cached, never overwritten."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guide_ray import cli
from guide_ray.metrics.fid import folder_key, image_files, real_image_stats
from guide_ray.metrics.stats import load_real_stats, saved_key
from guide_ray.models import weights as weight_registry
from guide_ray.models.nets.inception import StandInFeatures, fid_inception_v3
from guide_ray.utils.files import file_sha256


def _images(folder: Path, n: int, size: int = 40, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_real_image_stats_batch_by_size_and_record_the_extractor(tmp_path: Path) -> None:
    _images(tmp_path / "a", 3, size=40)
    _images(tmp_path / "a" / "sub", 2, size=48, seed=1)            # recursive, another size
    files = image_files(tmp_path / "a")
    assert len(files) == 5
    extractor = StandInFeatures(dim=4)
    stats = real_image_stats(files, extractor, batch_size=2)
    one_by_one = np.concatenate([extractor(torch.from_numpy(np.array(Image.open(p).convert("RGB")))
                                           .permute(2, 0, 1)[None]).numpy() for p in files])
    np.testing.assert_allclose(stats.mu, one_by_one.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert stats.n == 5 and stats.extractor == extractor.name
    key = folder_key(tmp_path / "a", files, extractor.name)
    assert key["n"] == 5 and key["extractor"] == extractor.name
    (tmp_path / "a" / "000.png").write_bytes(b"not a png")
    from guide_ray.errors import BadImage
    with pytest.raises(BadImage, match="000.png"):
        real_image_stats(image_files(tmp_path / "a"), extractor)


@pytest.fixture()
def ptfid_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder with a file in the pytorch-fid format; the registry's prefix is pointed at it
    (the real file's prefix 6726825d cannot be produced by a test)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / weight_registry.PT_INCEPTION.name
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(fid_inception_v3().state_dict(), path)
    entry = replace(weight_registry.PT_INCEPTION, sha256_prefix=file_sha256(path)[:8])
    monkeypatch.setitem(weight_registry.FID_EXTRACTOR_FILES, "pytorch-fid", entry)
    monkeypatch.setitem(weight_registry.FILES, entry.name, entry)
    return folder


def test_fid_stats_command_writes_caches_and_never_overwrites(tmp_path: Path, ptfid_weights: Path, capsys) -> None:
    _images(tmp_path / "real", 3, size=32)
    out = tmp_path / "stats" / "real.npz"
    args = ["fid-stats", str(tmp_path / "real"), "-o", str(out), "--weights", str(ptfid_weights), "--device", "cpu"]
    assert cli.main(args) == 0
    stats = load_real_stats(out)
    assert stats.n == 3 and stats.mu.shape == (2048,) and stats.extractor == "pytorch-fid-inception-v3"
    stamp = out.stat().st_mtime_ns
    assert cli.main(args) == 0 and "up to date" in capsys.readouterr().out
    assert out.stat().st_mtime_ns == stamp                           # cached: not recomputed
    _images(tmp_path / "real", 4, size=32, seed=9)                   # the folder changed
    assert cli.main(args) == 2
    assert "holds statistics of other images" in capsys.readouterr().err
    assert saved_key(out)["n"] == 3                                  # the finished file is kept


def test_fid_stats_command_refuses_a_wrong_file_as_a_process(tmp_path: Path) -> None:
    _images(tmp_path / "real", 2)
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / weight_registry.PT_INCEPTION.name).write_bytes(b"not the published file")
    run = subprocess.run([sys.executable, "-m", "guide_ray.cli", "fid-stats", str(tmp_path / "real"), "-o",
                          str(tmp_path / "s.npz"), "--weights", str(weights)], capture_output=True, text=True)
    assert run.returncode == 2 and "6726825d" in run.stderr and not (tmp_path / "s.npz").exists()
    run = subprocess.run([sys.executable, "-m", "guide_ray.cli", "fid-stats", str(tmp_path / "nowhere"), "-o",
                          str(tmp_path / "s.npz"), "--weights", str(weights), "--extractor", "clean-fid"],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "inception-2015-12-05.pt" in run.stderr
