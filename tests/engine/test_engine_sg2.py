"""A mixed manifest (random + photo identities) through the engine on the 2D backend, on a local
Ray cluster, with the real Pipeline: one committed row per identity, backend recorded."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from local_ray import local_cluster

from guide_ray.config.job import JobSpec
from guide_ray.engine.run import run_job
from guide_ray.models.stylegan2.unlearnable import build_unlearnable
from guide_ray.store import results
from guide_ray.reduce.tables import write_tables

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():  # noqa: ANN201
    with local_cluster(num_gpus=None):
        yield


def test_mixed_manifest_on_stylegan2_tiny(tmp_path: Path) -> None:
    from test_backend_sg2 import write_render

    G = build_unlearnable("stylegan2-tiny")
    photos = tmp_path / "photos"
    photos.mkdir()
    src, other = write_render(G, 21, photos / "a.png"), write_render(G, 22, photos / "b.png")
    pq.write_table(pa.table({
        "identity_id": ["random-0", "random-1", "person-a"], "scenario": ["random", "random", "custom"],
        "seed": [0, 1, 2], "source": ["", "", "photos/a.png"], "other_images": [[], [], ["photos/b.png"]],
    }), tmp_path / "m.parquet")
    job = JobSpec.model_validate({
        "name": "sg2", "manifest": str(tmp_path / "m.parquet"), "output_dir": str(tmp_path / "run"),
        "model": {"backend": "stylegan2-tiny"}, "guide": {"iterations": 3}, "device": "cpu",
        "metrics": ["ID", "ID_others", "FID_pre"], "fid": {"num_samples": 4, "batch_size": 2},
        "resources": {"cpus_per_actor": 1}, "num_actors": 1})
    summary = run_job(job)
    assert (summary.ok, summary.failed, summary.invalid_rows) == (3, 0, 0), summary
    rows = results.committed(job.run_dir)
    assert set(rows) == {"random-0", "random-1", "person-a"}
    assert {r.backend for r in rows.values()} == {"stylegan2-tiny"} and all(r.stand_in for r in rows.values())
    assert rows["person-a"].ID_others is not None and rows["random-0"].ID_others is None
    assert rows["person-a"].source == src and src != other
    assert all(r.ID is not None and r.FID_pre is not None for r in rows.values())
    table, _ = write_tables(job.run_dir)
    assert set(table.backend) == {"stylegan2-tiny"} and table.ok.sum() == 3
    again = run_job(job)                                     # resume: nothing recomputed
    assert again.skipped == 3 and again.ok == 0
