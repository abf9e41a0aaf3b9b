"""`guide-ray manifest world` and `generate: world_*` jobs: rendered photos listed as photo scenarios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from guide_ray.config.job import JobSpec
from guide_ray.config.manifest import read_manifest
from guide_ray.engine.run import resolve_manifest


def test_manifest_world_writes_photos_and_rows(tmp_path: Path) -> None:
    out = tmp_path / "ood.parquet"
    proc = subprocess.run([sys.executable, "-m", "guide_ray.cli", "manifest", "world", "--domain", "ood", "--n", "2",
                           "--photos", "3", "--seed", "4", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [row for _, row in read_manifest(out).rows]
    assert [r.identity_id for r in rows] == ["world-ood-0000", "world-ood-0001"]
    assert {r.scenario for r in rows} == {"world_ood"} and all(len(r.other_images) == 2 for r in rows)
    source = tmp_path / rows[0].source
    pixels = np.asarray(Image.open(source), dtype=np.float64)
    assert pixels.shape == (256, 256, 3)
    assert pixels.mean() == pytest.approx(GOLDEN_SOURCE_MEAN, abs=1e-3)   # a few pixels may round differently
    other = np.asarray(Image.open(tmp_path / rows[0].other_images[0]), dtype=np.float64)
    assert np.abs(other - pixels).mean() > 5          # another camera, light and expression


def test_generated_world_manifest_is_the_same_every_time(tmp_path: Path) -> None:
    job = JobSpec.model_validate({"name": "w", "manifest": {"generate": "world_in_domain", "n": 1, "photos": 2,
                                                             "variants": ["baseline", "guide"]},
                                  "model": {"backend": "world"}, "output_dir": str(tmp_path / "run")})
    first = resolve_manifest(job)
    photo = next((tmp_path / "run" / "photos" / "in_domain").rglob("00.png")).read_bytes()
    rows = [row for _, row in read_manifest(first).rows]
    assert [r.identity_id for r in rows] == ["world-ind-0000.baseline", "world-ind-0000.guide"]
    assert rows[0].source == rows[1].source and rows[0].seed == rows[1].seed
    resolve_manifest(job)
    assert next((tmp_path / "run" / "photos" / "in_domain").rglob("00.png")).read_bytes() == photo


GOLDEN_SOURCE_MEAN = 146.43898  # mean 8-bit value of world-ood-0000/00.png (seed 4)


def test_world_backend_end_to_end_on_a_photo_identity(mini_world: Path, tmp_path: Path) -> None:
    """Every metric of a photo identity through the real pipeline on the `world` backend: no network is a
    stand-in, ΔFID_real compares with renderer images, and the photo is inverted once for all variants."""
    from guide_ray.config.guide import GuideConfig
    from guide_ray.config.job import WorkItem
    from guide_ray.pipeline import Pipeline
    from guide_ray.world.photos import write_photo_folders

    job = JobSpec.model_validate({
        "name": "w", "manifest": str(tmp_path / "m.parquet"), "output_dir": str(tmp_path / "run"), "device": "cpu",
        "metrics": ["ID", "ID_others", "FID_pre", "delta_FID_real"], "fid": {"num_samples": 6, "batch_size": 3},
        "model": {"backend": "world", "weights_dir": str(mini_world), "inversion": {"projection_steps": 2}}})
    pipeline = Pipeline(job, "cpu")
    assert not pipeline.stand_in
    (folder,) = write_photo_folders(tmp_path / "photos", "in_domain", 1, 2, 0)
    photos = sorted(str(p) for p in folder.iterdir())
    item = WorkItem(identity_id="p", scenario="world_in_domain", backend="world", source=photos[0],
                    other_images=(photos[1],), seed=3, variant="guide", guide=GuideConfig(iterations=2), run_key="k")
    outcome = pipeline.run(item, tmp_path / "attempt")
    assert all(np.isfinite(outcome.metrics[m]) for m in ("ID", "ID_others", "FID_pre", "delta_FID_real"))
    assert not outcome.stand_in and outcome.id_views_unaligned is None
    assert pipeline.real_stats.extractor == "world:idnet-metric-trunk-pool" and pipeline.real_stats.n == 6
    assert len(list((tmp_path / "run" / "cache" / "latents").glob("*.pt"))) == 2     # source + other photo
