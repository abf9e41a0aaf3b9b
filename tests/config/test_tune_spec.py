"""TuneSpec validation: every bad spec fails in load_tune (before Ray) with a ConfigError naming the field."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import ray
import yaml

from guide_ray.cli import main as cli_main
from guide_ray.config.tune import (
    Objective,
    Searcher,
    best_job,
    damage_settings,
    default_point,
    forgetting,
    load_tune,
    penalised,
    trial_job,
)
from guide_ray.errors import ConfigError

BASE = {"name": "b", "manifest": {"generate": "random", "n": 3}, "guide": {"iterations": 5, "lr": 1e-3},
        "metrics": ["ID"], "output_dir": "run", "device": "cpu"}


def _spec(**changes: object) -> dict:
    spec = {"name": "t", "base_job": BASE, "validation": {"limit": 2},
            "space": {"d": {"type": "uniform", "low": 10, "high": 60},
                      "local_weights.lambda_id": {"type": "loguniform", "low": 0.01, "high": 1.0},
                      "n_adj": {"type": "integer", "low": 0, "high": 4},
                      "noise_mode": {"type": "choice", "values": ["random", "const"]}},
            "objective": {"damage_bound": 1.0}, "output_dir": "out"}
    return {**spec, **changes}


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_valid_spec_builds_trial_jobs(tmp_path: Path) -> None:
    spec, base = load_tune(_write(tmp_path, _spec()))
    assert default_point(spec) == {"d": 30.0, "local_weights.lambda_id": 0.1, "n_adj": 2, "noise_mode": "random"}
    job = trial_job(spec, base, {"d": 12.5, "local_weights.lambda_id": 0.5, "n_adj": 3, "noise_mode": "const"},
                    tmp_path / "trial")
    assert (job.guide.d, job.guide.local_weights.lambda_id, job.guide.n_adj) == (12.5, 0.5, 3)
    assert job.guide.lr == 1e-3 and job.guide.iterations == 5          # the base job's settings stay
    assert job.metrics == ("ID", "FID_pre") and job.limit == 2          # the damage metric is added
    assert Path(spec.output_dir) == (tmp_path / "out").resolve()
    assert Path(base.output_dir) == (tmp_path / "run").resolve()      # inline job: relative to the tune YAML


def test_lpips_drift_damage_adds_the_metric_and_records_its_probes(tmp_path: Path) -> None:
    base = {**BASE, "lpips_drift": {"num_probes": 12, "seed": 7}}
    spec, base_job = load_tune(_write(tmp_path, _spec(base_job=base, objective={"damage": "LPIPS_drift",
                                                                                "damage_bound": 0.1})))
    job = trial_job(spec, base_job, default_point(spec), tmp_path / "trial")
    assert job.metrics == ("ID", "LPIPS_drift") and job.lpips_drift.num_probes == 12
    assert damage_settings(spec, job) == {"damage_metric": "LPIPS_drift", "damage_samples": 12, "damage_seed": 7}
    fid_spec, fid_base = load_tune(_write(tmp_path, _spec(base_job={**BASE, "fid": {"num_samples": 64, "seed": 3}})))
    assert damage_settings(fid_spec, trial_job(fid_spec, fid_base, {}, tmp_path / "t2")) == {
        "damage_metric": "FID_pre", "damage_samples": 64, "damage_seed": 3}


def test_optuna_startup_trials_golden() -> None:
    assert Searcher(kind="optuna-tpe").startup(6) == 2 and Searcher(kind="optuna-tpe").startup(90) == 10
    assert Searcher(kind="optuna-nsga2").startup(90) == 30 and Searcher(kind="optuna-nsga2").startup(600) == 50
    assert Searcher(kind="optuna-nsga2", startup_trials=4).startup(600) == 4


@pytest.mark.parametrize(("change", "needle"), [
    ({"spaces": {}}, "spaces"),                                                     # unknown top-level key
    ({"space": {"dd": {"type": "uniform", "low": 1, "high": 2}}}, "space.dd: 'dd' is not a GuideConfig field"),
    ({"space": {"local_weights.lambda_xx": {"type": "uniform", "low": 0, "high": 1}}}, "lambda_xx"),
    ({"space": {"camera": {"type": "choice", "values": [1]}}}, "space.camera: is a section"),
    ({"space": {"d": {"type": "uniform", "low": 60, "high": 10}}}, "space.d: low (60.0) must be below high"),
    ({"space": {"d": {"type": "uniform", "low": -5, "high": 40}}}, "space.d: value -5.0 is not valid"),
    ({"space": {"noise_mode": {"type": "choice", "values": ["random", "loud"]}}}, "space.noise_mode: value 'loud'"),
    ({"space": {"d": {"type": "normal", "low": 1, "high": 2}}}, "space.d"),
    ({"space": {"d": {"type": "uniform", "low": 40, "high": 60}}}, "space.d: GUIDE's default 30.0 is outside"),
    ({"objective": {"damage_bound": 1.0, "damage": "LPIPS"}}, "objective.damage"),
    ({"scheduler": {"kind": "asha"}, "objective": {"damage_bound": 1, "mode": "pareto"}}, "pareto"),
    ({"searcher": {"kind": "grid"}}, "searcher grid needs every dimension of type grid; space.d"),
    ({"resources": {"gpus": 1.5}}, "resources.gpus"),
    ({"searcher": {"kind": "random", "startup_trials": 3}}, "searcher.startup_trials applies to the Optuna"),
    ({"searcher": {"kind": "optuna-tpe", "startup_trials": 1}}, "searcher.startup_trials"),
])
def test_bad_spec_names_the_field_before_ray(tmp_path: Path, change: dict, needle: str) -> None:
    path = _write(tmp_path, _spec(**change))
    with pytest.raises(ConfigError, match="tune file") as info:
        load_tune(path)
    assert needle in str(info.value)


def test_bad_spec_through_the_cli_starts_no_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _spec(space={"dd": {"type": "uniform", "low": 1, "high": 2}}))
    assert cli_main(["tune", str(path)]) == 2
    assert "space.dd" in capsys.readouterr().err
    assert not ray.is_initialized()
    assert not (tmp_path / "out").exists()


def test_variant_conflict_fails_at_load(tmp_path: Path) -> None:
    base = {**BASE, "variant": "baseline"}  # baseline sets target: average; searching target would clash
    path = _write(tmp_path, _spec(base_job=base, space={"target": {"type": "choice",
                                                                   "values": ["extrapolated", "average"]}}))
    with pytest.raises(ConfigError, match="tune file .*space"):
        load_tune(path)


def test_optuna_searcher_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    path = _write(tmp_path, _spec(searcher={"kind": "optuna-tpe"}))
    with pytest.raises(ConfigError, match=r"optional extra 'tune': pip install 'guide-ray\[tune\]'"):
        load_tune(path)


def test_best_job_is_a_runnable_job(tmp_path: Path) -> None:
    spec, base = load_tune(_write(tmp_path, _spec()))
    data = best_job(base, {"d": 12.5, "n_adj": 3}, "t-best", tmp_path / "best")
    assert data["guide"] == {"iterations": 5, "lr": 1e-3, "d": 12.5, "n_adj": 3}  # base's explicit keys + trial's
    assert data["manifest"] == {"generate": "random", "n": 3}


def test_objective_golden() -> None:

    obj = Objective(damage_bound=2.0, penalty=10.0)
    assert penalised(0.25, 1.5, obj) == 0.25                    # feasible: no penalty
    assert penalised(0.25, 3.0, obj) == pytest.approx(5.25)     # 0.25 + 10 * (3 - 2) / 2
    assert forgetting({"ID": 0.4, "ID_others": 0.2}) == pytest.approx(0.3)
    assert forgetting({"ID": 0.4, "ID_others": None}) == pytest.approx(0.4)
    assert forgetting({"ID": None}) is None


JOBS = Path(__file__).resolve().parents[2] / "jobs"


@pytest.mark.parametrize("path", sorted(JOBS.glob("tune-*.yaml")), ids=lambda p: p.name)
def test_every_shipped_tune_spec_loads(path: Path) -> None:
    spec, base = load_tune(path)
    assert Path(spec.output_dir).is_absolute()


def test_tiny_tune_quickstart_is_small_and_includes_the_default() -> None:
    spec, base = load_tune(JOBS / "tune-tiny-quickstart.yaml")
    assert {"d", "alpha_max"} <= set(spec.space)
    assert spec.searcher.kind == "random" and spec.searcher.include_default
    assert spec.num_samples >= 6                       # the default point is one of them
    assert base.model.backend == "tiny" and base.device == "cpu" and spec.resources.gpus == 0


def test_tune_quickstart_fits_the_issue(tmp_path: Path) -> None:
    """≥ 6 trials on the synthetic world searching d and alpha_max, GUIDE's default included, damage
    LPIPS_drift, 100-200 steps, CPU only."""
    spec, base = load_tune(JOBS / "tune-quickstart.yaml")
    assert base.model.backend == "world" and base.device == "cpu" and spec.resources.gpus == 0
    assert {"d", "alpha_max"} <= set(spec.space) and spec.num_samples >= 6 and spec.searcher.include_default
    assert spec.objective.damage == "LPIPS_drift" and 100 <= base.guide.iterations <= 200
    job = trial_job(spec, base, default_point(spec), tmp_path / "trial")
    assert "LPIPS_drift" in job.metrics and job.limit == spec.validation.limit
