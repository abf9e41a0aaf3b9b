"""IdentityWorker without Ray: rows from outcomes, failures as rows, interrupts pass through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_fakes import FakePipeline

from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.guide import GuideConfig
from guide_ray.engine.worker import IdentityWorker, Placement, describe_exception, failed_row

PLACE = Placement(worker="w0", node="n0", device="cuda:0", gpu_ids=("3",))


def _job(tmp_path: Path) -> JobSpec:
    return JobSpec(name="t", manifest="m", output_dir=str(tmp_path), metrics=["ID", "FID_pre"])


def _item(identity_id: str = "p-1", iterations: int = 1) -> WorkItem:
    return WorkItem(identity_id=identity_id, scenario="random", backend="tiny", source="", seed=42, variant="guide",
                    guide=GuideConfig(iterations=iterations), run_key="r" * 16)


class CountingFactory:
    def __init__(self) -> None:
        self.built = 0

    def __call__(self, job: JobSpec, device: str) -> FakePipeline:
        self.built += 1
        assert device == "cuda:0"
        return FakePipeline(job, device)


def test_ok_row_carries_outcome_placement_and_relative_artifacts(tmp_path: Path) -> None:
    factory = CountingFactory()
    worker = IdentityWorker(_job(tmp_path), "j" * 16, PLACE, factory)
    row = worker.process(_item())
    assert row.status == "ok" and row.error is None
    assert (row.ID, row.ID_others, row.FID_pre, row.delta_FID_real) == (0.042, None, 1.5, None)
    assert (row.loss_first, row.loss_last, row.loss_min, row.iterations) == (1.0, 0.2, 0.1, 1)
    assert row.device == "cuda:0 (GPU 3)" and row.worker == "w0" and row.node == "n0"
    # staged in a folder of this attempt's own; the driver promotes it to artifacts/p-1/ on commit
    assert re.fullmatch(r"staging/p-1\.[0-9a-f]{12}/grid\.png", row.artifact_grid)
    assert (tmp_path / row.artifact_grid).is_file()
    assert row.stand_in and row.run_key == "r" * 16 and row.job_key == "j" * 16
    assert row.seconds > 0


def test_pipeline_built_and_prepared_once(tmp_path: Path) -> None:
    factory = CountingFactory()
    worker = IdentityWorker(_job(tmp_path), "j", PLACE, factory)
    assert worker.ready() == PLACE
    for i in range(3):
        worker.process(_item(f"p-{i}"))
    assert factory.built == 1
    assert (tmp_path / "prepare.log").read_text().split() == ["computed"]


def test_any_exception_becomes_a_failed_row(tmp_path: Path) -> None:
    worker = IdentityWorker(_job(tmp_path), "j", PLACE, CountingFactory())
    row = worker.process(_item("bad-1"))
    assert row.status == "failed"
    assert row.error == "ValueError: cannot read image for bad-1"
    assert row.ID is None and row.artifact_grid is None


def test_construction_failure_becomes_a_failed_row_in_process_but_raises_in_ready(tmp_path: Path) -> None:
    def broken(job: JobSpec, device: str) -> FakePipeline:
        raise FileNotFoundError("no weights")

    worker = IdentityWorker(_job(tmp_path), "j", PLACE, broken)
    with pytest.raises(FileNotFoundError):
        worker.ready()
    assert worker.process(_item()).error == "FileNotFoundError: no weights"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_interrupts_pass_through(tmp_path: Path, exc: type[BaseException]) -> None:
    class Interrupting(FakePipeline):
        def run(self, item: WorkItem, out_dir: Path) -> None:
            raise exc()

    worker = IdentityWorker(_job(tmp_path), "j", PLACE, lambda job, dev: Interrupting(job, dev))
    with pytest.raises(exc):
        worker.process(_item())


def test_unknown_metric_is_a_contract_violation(tmp_path: Path) -> None:
    class Extra(FakePipeline):
        def run(self, item: WorkItem, out_dir: Path):  # noqa: ANN201
            out = super().run(item, out_dir)
            return type(out)(**{**out.__dict__, "metrics": {"id_sim": 0.1}})

    row = IdentityWorker(_job(tmp_path), "j", PLACE, lambda job, dev: Extra(job, dev)).process(_item())
    assert row.status == "failed" and "unknown metrics ['id_sim']" in row.error


def test_artifacts_outside_the_attempt_folder_fail_the_item(tmp_path: Path) -> None:
    class Stray(FakePipeline):
        def run(self, item: WorkItem, out_dir: Path):  # noqa: ANN201
            out = super().run(item, out_dir)
            stray = self.job.run_dir / "artifacts" / "p-1" / "G_u.pt"
            return type(out)(**{**out.__dict__, "artifacts": {"weights": str(stray)}})

    row = IdentityWorker(_job(tmp_path), "j", PLACE, lambda job, dev: Stray(job, dev)).process(_item())
    assert row.status == "failed"
    assert "pipeline wrote artifacts ['artifacts/p-1/G_u.pt'] outside its attempt folder staging/p-1." in row.error


def test_an_attempt_never_touches_committed_artifacts(tmp_path: Path) -> None:
    committed = tmp_path / "artifacts" / "p-1" / "G_u.pt"
    committed.parent.mkdir(parents=True)
    committed.write_bytes(b"committed")
    worker = IdentityWorker(_job(tmp_path), "j", PLACE, CountingFactory())
    first, second = worker.process(_item()), worker.process(_item())
    assert committed.read_bytes() == b"committed" and list(committed.parent.iterdir()) == [committed]
    assert first.artifact_weights != second.artifact_weights  # each attempt stages apart


def test_describe_exception_caps_length() -> None:
    text = describe_exception(ValueError("x" * 5000))
    assert text.startswith("ValueError: x") and len(text) == 2000 and text.endswith("...")


def test_failed_row_from_the_driver() -> None:
    row = failed_row(_item(), "worker died: ActorDiedError", 3.0, placement=PLACE, job_key="j")
    assert row.status == "failed" and row.worker == "w0" and row.seconds == 3.0 and row.attempts == 1
