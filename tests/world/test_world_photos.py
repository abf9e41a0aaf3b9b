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
    assert pixels.mean() == pytest.approx(GOLDEN_SOURCE_MEAN, abs=1e-6)
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


GOLDEN_SOURCE_MEAN = float("nan")
