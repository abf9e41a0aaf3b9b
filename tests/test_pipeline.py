"""The real per-identity pipeline on the embedded tiny world (no Ray): photo scenario, every metric."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.guide import GuideConfig, SpeedConfig
from guide_ray.errors import BadImage
from guide_ray.guide.fast import resolve_autocast
from guide_ray.pipeline import Pipeline


def _photo(path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Pipeline:
    run = tmp_path_factory.mktemp("run")
    job = JobSpec.model_validate({
        "name": "p", "manifest": str(run / "m.parquet"), "output_dir": str(run), "device": "cpu",
        "metrics": ["ID", "ID_others", "FID_pre"], "fid": {"num_samples": 4, "batch_size": 2},
        "model": {"backend": "tiny", "inversion": {"projection_steps": 3}},
    })
    return Pipeline(job, "cpu")


def _item(tmp_path: Path, **changes) -> WorkItem:
    base = dict(identity_id="person-1", scenario="custom", backend="tiny", source=_photo(tmp_path / "a.png", 0),
                other_images=(_photo(tmp_path / "b.png", 1),), seed=5, variant="guide",
                guide=GuideConfig(iterations=2), run_key="k")
    return WorkItem(**{**base, **changes})


def test_photo_identity_end_to_end(pipeline, tmp_path):
    out_dir = tmp_path / "attempt"
    outcome = pipeline.run(_item(tmp_path), out_dir)
    assert outcome.iterations == 2 and outcome.stand_in
    assert Path(outcome.artifacts["weights"]).parent == out_dir  # everything in the folder it was given
    for name in ("ID", "ID_others", "FID_pre"):
        assert outcome.metrics[name] is not None and np.isfinite(outcome.metrics[name])
    assert outcome.metrics["delta_FID_real"] is None                  # not requested
    assert -1 <= outcome.metrics["ID"] <= 1 and outcome.metrics["FID_pre"] >= 0
    weights = torch.load(outcome.artifacts["weights"], weights_only=True)
    assert set(weights) == set(pipeline.G_s.backbone.synthesis.state_dict())
    assert Path(outcome.artifacts["grid"]).stat().st_size > 0
    record = json.loads((Path(outcome.artifacts["grid"]).parent / "metrics.json").read_text())
    assert record["seed"] == 5 and record["stand_in"] is True and record["metrics"]["ID"] == outcome.metrics["ID"]
    from test_unlearn_command import RECORD_KEYS
    assert set(record) == RECORD_KEYS                             # `guide-ray unlearn` writes the same format
    assert outcome.id_views_unaligned is None                     # tiny: stand-in embedder, no MTCNN
    assert record["micro_batch"]["micro_batch"] == 5 and record["micro_batch"]["source"] == "auto"
    assert record["guide"]["speed"]["autocast"] == "auto" and record["autocast"] in ("sr-bf16", "off")
    assert record["autocast"] == resolve_autocast(SpeedConfig(), torch.device("cpu"))
    assert set(record["stage_seconds"]) == {"source", "unlearning", "metrics", "artifacts"}
    assert sum(record["stage_seconds"].values()) <= record["seconds"] + 0.01
    # the pretrained FID statistics were computed once and cached on disk
    assert list(pipeline.job.fid_cache_dir.rglob("*.npz"))


def test_same_item_same_numbers(pipeline, tmp_path):
    a = pipeline.run(_item(tmp_path, identity_id="again-1"), tmp_path / "a")
    b = pipeline.run(_item(tmp_path, identity_id="again-2"), tmp_path / "b")
    assert a.metrics == b.metrics and a.loss_last == b.loss_last


def test_unreadable_photo_is_a_clear_error(pipeline, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(BadImage, match="broken.png"):
        pipeline.run(_item(tmp_path, source=str(tmp_path / "broken.png")), tmp_path / "c")


def test_fid_renders_use_the_identitys_effective_camera(pipeline, tmp_path):
    """An identity whose config changes the camera gets pretrained statistics for that camera, not the job's."""
    from guide_ray.config.guide import CameraConfig

    cache = pipeline.job.fid_cache_dir
    pipeline.prepare(cache)
    before = set(cache.rglob("*.npz"))
    guide = GuideConfig(iterations=1, camera=CameraConfig(radius=2.5, fov_deg=20.0))
    outcome = pipeline.run(_item(tmp_path, identity_id="camera-1", guide=guide), tmp_path / "camera-1")
    new = set(cache.rglob("*.npz")) - before
    assert len(new) == 1 and np.isfinite(outcome.metrics["FID_pre"])

    key = json.loads(str(np.load(next(iter(new)), allow_pickle=False)["key"]))
    assert key["camera"]["radius"] == 2.5 and key["camera"]["fov_deg"] == 20.0 and key["role"] == "pretrained"


def test_a_photo_is_inverted_once_for_every_variant(pipeline, tmp_path, monkeypatch):
    """The table's variants share the identity's photo and seed: the second inverts nothing."""
    calls = []
    real = pipeline.backend.inverter

    def counting(*args, **kwargs):
        inverter = real(*args, **kwargs)
        invert = inverter.invert
        inverter.invert = lambda image: (calls.append(1), invert(image))[1]
        return inverter

    monkeypatch.setattr(pipeline.backend, "inverter", counting)
    source = _photo(tmp_path / "same.png", 7)
    w_first = pipeline.source_latent(_item(tmp_path, source=source, seed=11))
    w_again = pipeline.source_latent(_item(tmp_path, source=source, seed=11, variant="baseline"))
    assert len(calls) == 1 and torch.equal(w_first, w_again)
    pipeline.source_latent(_item(tmp_path, source=source, seed=12))      # another seed: inverted again
    assert len(calls) == 2


# LPIPS_drift of a random identity (seed 5) after 2 steps at lr 1e-2 on tiny: 4 probes, seed 0, batch 2
DRIFT_AFTER_TWO_STEPS = 0.023963615763932467


def test_lpips_drift_through_the_pipeline(tmp_path):
    """`guide-ray run` computes LPIPS_drift from the job's probe settings and records them."""
    job = JobSpec.model_validate({
        "name": "p", "manifest": str(tmp_path / "m.parquet"), "output_dir": str(tmp_path), "device": "cpu",
        "metrics": ["LPIPS_drift"], "lpips_drift": {"num_probes": 4, "seed": 0, "batch_size": 2},
        "model": {"backend": "tiny"}})
    pipeline = Pipeline(job, "cpu")
    item = _item(tmp_path, scenario="random", source="", other_images=(), guide=GuideConfig(iterations=2, lr=1e-2, speed=SpeedConfig(autocast="off")))
    outcome = pipeline.run(item, tmp_path / "drift")
    assert outcome.metrics["LPIPS_drift"] == pytest.approx(DRIFT_AFTER_TWO_STEPS, rel=1e-3)
    assert outcome.metrics["ID"] is None and outcome.metrics["FID_pre"] is None      # not requested
    record = json.loads((tmp_path / "drift" / "metrics.json").read_text())
    assert record["lpips_drift"] == {"num_probes": 4, "seed": 0, "batch_size": 2}
    assert record["metrics"]["LPIPS_drift"] == outcome.metrics["LPIPS_drift"]


def test_engine_workers_plan_memory_with_their_share_of_the_host(pipeline):
    """A lone pipeline has the device to itself; the engine's worker gets cpus_per_actor / host CPUs."""
    import os

    from guide_ray.engine.worker import default_pipeline_factory

    assert pipeline.memory_share == 1.0
    job = pipeline.job.model_copy(update={"resources": pipeline.job.resources.model_copy(update={"cpus_per_actor": 1.0})})
    worker = default_pipeline_factory(job, "cpu")
    assert worker.memory_share == pytest.approx(min(1.0, 1.0 / os.cpu_count()))
