"""run_key: what changes it and what must not."""

from __future__ import annotations

import subprocess
import sys

from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import JobSpec
from guide_ray.config.manifest import ManifestRow
from guide_ray.store.runkey import item_run_key, job_key

JOB = JobSpec(name="t", manifest="m.parquet", output_dir="/runs/a", metrics=["ID"])
ROW = ManifestRow(identity_id="p", scenario="custom", seed=1, source="p/1.png")


def _job(**changes: object) -> JobSpec:
    return JobSpec.model_validate({**JOB.model_dump(), **changes})


def test_job_key_ignores_paths_resources_and_retries() -> None:
    base = job_key(JOB, "w", "0.1.0")
    same = _job(output_dir="/runs/b", manifest="other.parquet", resources={"gpus_per_actor": 0.5},
                max_attempts=5, num_actors=3, prefetch=1, name="renamed")
    assert job_key(same, "w", "0.1.0") == base
    assert len(base) == 16


def test_job_key_tracks_weights_metrics_version_and_fid_settings() -> None:
    base = job_key(JOB, "w", "0.1.0")
    assert job_key(JOB, "w2", "0.1.0") != base
    assert job_key(JOB, "w", "0.2.0") != base
    assert job_key(_job(metrics=["ID", "ID_others"]), "w", "0.1.0") != base
    assert job_key(_job(fid={"num_samples": 10}), "w", "0.1.0") == base  # FID not requested: irrelevant
    with_fid = _job(metrics=["FID_pre"])
    assert job_key(_job(metrics=["FID_pre"], fid={"num_samples": 10}), "w", "0.1.0") != job_key(with_fid, "w", "0.1.0")


def test_job_key_tracks_lpips_drift_probes_only_when_requested() -> None:
    assert job_key(_job(lpips_drift={"num_probes": 4}), "w", "0.1.0") == job_key(JOB, "w", "0.1.0")
    drift = _job(metrics=["ID", "LPIPS_drift"])
    for change in ({"num_probes": 4}, {"seed": 1}, {"batch_size": 2}):
        assert job_key(_job(metrics=["ID", "LPIPS_drift"], lpips_drift=change), "w", "0.1.0") != job_key(drift, "w",
                                                                                                          "0.1.0")


def test_item_key_tracks_inputs_and_effective_config() -> None:
    cfg = GuideConfig()
    base = item_run_key("j", ROW, "guide", cfg)
    assert item_run_key("j2", ROW, "guide", cfg) != base
    assert item_run_key("j", ROW.model_copy(update={"seed": 2}), "guide", cfg) != base
    assert item_run_key("j", ROW.model_copy(update={"source": "p/2.png"}), "guide", cfg) != base
    assert item_run_key("j", ROW, "baseline", cfg) != base
    assert item_run_key("j", ROW, "guide", GuideConfig(d=20.0)) != base
    assert item_run_key("j", ROW, "guide", cfg, encoder="e") != base
    assert item_run_key("j", ROW, "guide", GuideConfig()) == base


def test_keys_are_stable_across_processes() -> None:
    code = ("from guide_ray.store.runkey import job_key; from guide_ray.config.job import JobSpec;"
            "print(job_key(JobSpec(name='t', manifest='m.parquet', output_dir='/runs/a', metrics=['ID']), 'w', '0.1.0'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"}).stdout.strip()
    assert out == job_key(JOB, "w", "0.1.0")
