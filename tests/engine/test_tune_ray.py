"""`guide-ray tune` on a real local Ray cluster (2 CPUs, a logical GPU) with a fake per-identity core.

Covers: a small search writes the trial table, a best_job.yaml that `guide-ray run` accepts and the
plot; trials use the seeds and run_keys `guide-ray run` gives the same job; ASHA stops a bad trial
early; an interrupted search resumes without rerunning finished trials or finished identities;
Optuna's TPE (resumed too) and NSGA-II are told what the trials reported (NSGA-II: both objectives).
Slow cases run the real tiny core, Optuna included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import tune_fakes
import yaml
from local_ray import local_cluster
from PIL import Image

from guide_ray.config.job import load_job
from guide_ray.config.tune import load_tune
from guide_ray.engine.run import RunOptions, plan
from guide_ray.engine.tune import experiment_path, run_tune
from guide_ray.errors import ConfigError
from guide_ray.reduce.tune_report import write_outputs

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():  # noqa: ANN201
    with local_cluster(tune_fakes):
        yield


def _spec(tmp_path: Path, n: int = 2, **changes: object) -> Path:
    base = {"name": "b", "manifest": {"generate": "random", "n": n, "seed": 3}, "guide": {"iterations": 4},
            "metrics": ["ID", "FID_pre"], "fid": {"num_samples": 8, "batch_size": 4},
            "output_dir": "base-run", "device": "cpu"}
    spec = {"name": "t", "base_job": base, "validation": {"limit": n},
            "space": {"d": {"type": "uniform", "low": 10, "high": 60},
                      "alpha_max": {"type": "choice", "values": [5.0, 15.0, 25.0]}},
            "objective": {"damage_bound": 2.0, "penalty": 10.0},
            "resources": {"cpus": 0.5, "gpus": 0.25}, "num_samples": 3, "max_concurrent_trials": 2,
            "output_dir": "out"}
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({**spec, **changes}))
    return path


def _calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "out" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_small_search_writes_table_best_job_and_plot(tmp_path: Path) -> None:
    spec, base = load_tune(_spec(tmp_path, report_every_steps=2))
    run = run_tune(spec, base, factory=tune_fakes.FakeTunePipeline)
    assert not run.interrupted
    records = run.records
    # identity 1: one report; identity 2: steps 2 and 4 (running means of identity 1), then its own
    assert [r["training_iteration"] for r in records] == [4, 4, 4]
    out = write_outputs(spec, base, records)

    table = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert len(table) == 3 and set(table["status"]) == {"complete"}
    assert {"d", "alpha_max", "ID", "FID_pre", "forgetting", "damage", "objective", "feasible", "pareto",
            "is_default", "identities_done"} <= set(table.columns)
    assert table["is_default"].sum() == 1                      # GUIDE's default point ran as one trial
    default = table[table["is_default"]].iloc[0]
    assert (default["d"], default["alpha_max"]) == (30.0, 15.0)
    for _, row in table.iterrows():                            # the fake's formula, through the means
        assert row["ID"] == pytest.approx(1 / (1 + row["d"] / 10))
        expected = 1 / (1 + row["d"] / 10) + 10 * max(0.0, row["alpha_max"] / 10 - 2.0) / 2.0
        assert row["objective"] == pytest.approx(expected)
        assert row["identities_done"] == 2
    assert out.best["objective"] == pytest.approx(table["objective"].min())
    assert set(table["damage_metric"]) == {"FID_pre"} and set(table["damage_samples"]) == {8}
    assert (tmp_path / "out" / "trials.csv").exists() and "| trial_id |" in (tmp_path / "out" / "trials.md").read_text()
    assert "mean FID_pre over 8 samples per generator (seed 0)" in out.markdown
    with Image.open(tmp_path / "out" / "tune.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert "tune.png" in (tmp_path / "out" / "tune.html").read_text()

    best_path = tmp_path / "out" / "best_job.yaml"
    job = load_job(best_path)
    assert job.guide.d == pytest.approx(out.best["d"]) and job.guide.alpha_max == out.best["alpha_max"]
    assert job.guide.iterations == 4 and job.limit is None     # the base job, on its whole manifest
    proc = subprocess.run([sys.executable, "-m", "guide_ray.cli", "run", str(best_path), "--dry-run"],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert "to run: 2" in proc.stdout

    # trials used exactly the items (seeds, run_keys) `guide-ray run` plans for the same job
    planned = {i.identity_id: (i.seed, i.run_key) for i in plan(job, RunOptions()).todo}
    best_calls = [c for c in _calls(tmp_path) if c["d"] == out.best["d"] and c["alpha_max"] == out.best["alpha_max"]]
    assert {c["id"]: (c["seed"], c["run_key"]) for c in best_calls} == planned


def test_asha_stops_a_bad_trial_early(tmp_path: Path) -> None:
    # trials run one at a time in grid order, best first: d=40 → ID 0.2, then 0.25, 0.33, 0.5 at every report
    spec, base = load_tune(_spec(
        tmp_path, n=4, space={"d": {"type": "grid", "values": [40.0, 30.0, 20.0, 10.0]},
                              "alpha_max": {"type": "grid", "values": [15.0]}},
        searcher={"kind": "grid"}, scheduler={"kind": "asha", "grace_period": 1, "reduction_factor": 2},
        num_samples=1, max_concurrent_trials=1))
    run = run_tune(spec, base, factory=tune_fakes.FakeTunePipeline)
    assert not run.interrupted                                   # ASHA's stops are not an interruption
    records = run.records
    by_d = {r["d"]: r for r in records}
    assert by_d[40.0]["status"] == "complete" and by_d[40.0]["identities_done"] == 4
    stopped = [r for r in records if r["status"] == "stopped"]
    assert stopped and all(r["identities_done"] < 4 for r in stopped)
    assert by_d[10.0]["status"] == "stopped"                     # the worst trial never finished
    assert Counter(c["d"] for c in _calls(tmp_path))[10.0] < 4


def test_interrupted_search_resumes_without_rerunning(tmp_path: Path) -> None:
    path = _spec(tmp_path, space={"d": {"type": "grid", "values": [10.0, 40.0, 20.0]},
                                  "alpha_max": {"type": "grid", "values": [15.0]}},
                 searcher={"kind": "grid", "include_default": False}, num_samples=1, max_concurrent_trials=1)
    spec, base = load_tune(path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "interrupt.pid").write_text(str(os.getpid()))  # d=40's 2nd identity sends SIGINT
    interrupted = run_tune(spec, base, factory=tune_fakes.FakeTunePipeline)
    assert interrupted.interrupted
    first = interrupted.records
    assert {r["d"]: r["status"] for r in first}.get(10.0) == "complete"
    assert len([r for r in first if r["status"] == "complete"]) < 3
    before = Counter((c["d"], c["id"]) for c in _calls(tmp_path))

    with pytest.raises(ConfigError, match="already holds the search"):
        run_tune(spec, base, factory=tune_fakes.FakeTunePipeline)
    resumed = run_tune(spec, base, resume=True, factory=tune_fakes.FakeTunePipeline)
    assert not resumed.interrupted
    records = resumed.records
    assert sorted(r["status"] for r in records) == ["complete"] * 3
    after = Counter((c["d"], c["id"]) for c in _calls(tmp_path))
    assert after[(10.0, "random-0000")] == after[(10.0, "random-0001")] == 1   # finished trial not rerun
    assert after[(40.0, "random-0000")] == 1                                   # its checkpoint was used
    assert before[(40.0, "random-0001")] == 1 and after[(40.0, "random-0001")] == 2  # interrupted one redone
    assert after[(20.0, "random-0000")] == 1


def _flat(rows: list[tuple]) -> list[float]:
    return [float(v) for row in rows for v in row]


def _optuna_study(spec):  # noqa: ANN001, ANN202
    """The Optuna study as the search left it: Tune saves the searcher into the experiment folder."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(experiment_path(spec)))
    return searcher._ot_study


def test_optuna_tpe_search_resumes_after_an_interruption(tmp_path: Path) -> None:
    """TPE minimises the penalised objective; Tuner.restore brings Optuna's study back: the interrupted
    default trial resumes from its checkpoint, the other trials are still sampled, and TPE is told
    every trial's objective."""
    spec, base = load_tune(_spec(tmp_path, searcher={"kind": "optuna-tpe", "seed": 1}, max_concurrent_trials=1))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "interrupt.pid").write_text(f"{os.getpid()} 30")   # the default point's 2nd identity
    assert run_tune(spec, base, factory=tune_fakes.FakeTunePipeline).interrupted
    resumed = run_tune(spec, base, resume=True, factory=tune_fakes.FakeTunePipeline)
    records = resumed.records
    assert not resumed.interrupted and [r["status"] for r in records] == ["complete"] * 3
    assert (records[0]["d"], records[0]["alpha_max"]) == (30.0, 15.0)      # the default point went first
    for r in records:
        assert 10 <= r["d"] <= 60 and r["alpha_max"] in (5.0, 15.0, 25.0)
    calls = Counter((c["d"], c["id"]) for c in _calls(tmp_path))
    assert calls[(30.0, "random-0000")] == 1 and calls[(30.0, "random-0001")] == 2   # its checkpoint was used
    study = _optuna_study(spec)
    assert [d.name for d in study.directions] == ["MINIMIZE"]
    told = sorted((t.params["d"], t.value) for t in study.trials if t.state.name == "COMPLETE")
    reported = sorted((r["d"], r["objective"]) for r in records)
    assert _flat(told) == pytest.approx(_flat(reported))                     # TPE was told every objective


def _tiny_base(**changes: object) -> dict:
    """One random identity on the real tiny core: 2 steps, ID + LPIPS_drift over 4 probes."""
    return {"name": "b", "manifest": {"generate": "random", "n": 1}, "model": {"backend": "tiny"},
            "guide": {"iterations": 2, "lr": 1e-2}, "metrics": ["ID"],
            "lpips_drift": {"num_probes": 4, "batch_size": 4}, "output_dir": "base-run", "device": "cpu", **changes}


def test_optuna_nsga2_searches_both_objectives(tmp_path: Path) -> None:
    # one trial at a time, generations of 2 (at least 2): after GUIDE's default (enqueued, in no
    # generation) trials 1-2 are generation 0, trial 3 is bred from them
    spec, base = load_tune(_spec(tmp_path, searcher={"kind": "optuna-nsga2", "seed": 1}, max_concurrent_trials=1,
                                 num_samples=4,
                                 objective={"mode": "pareto", "damage": "LPIPS_drift", "damage_bound": 0.2}))
    run = run_tune(spec, base, factory=tune_fakes.FakeTunePipeline)
    records = run.records
    assert not run.interrupted and [r["status"] for r in records] == ["complete"] * 4
    for r in records:                                                        # damage is the fake's LPIPS_drift
        assert r["damage"] == pytest.approx(r["alpha_max"] / 100) and r["damage_metric"] == "LPIPS_drift"
    study = _optuna_study(spec)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    told = sorted((t.params["d"], *t.values) for t in study.trials if t.state.name == "COMPLETE")
    reported = sorted((r["d"], r["forgetting"], r["damage"]) for r in records)
    assert _flat(told) == pytest.approx(_flat(reported))                     # NSGA-II was told both, per trial
    ordered = sorted(study.trials, key=lambda t: t.number)
    assert ordered[0].params == {"d": 30.0, "alpha_max": 15.0}
    assert [t.system_attrs.get("NSGAIISampler:generation") for t in ordered] == [None, 0, 0, 1]   # bred, not random
    out = write_outputs(spec, base, records)
    assert out.table["pareto"].any() and out.best is not None and out.best["damage"] <= 0.2


@pytest.mark.slow
def test_tiny_real_search_end_to_end(tmp_path: Path) -> None:
    """Two trials of the real per-identity core (tiny backend, 2 steps, 8 FID samples), one identity each."""
    base = {"name": "b", "manifest": {"generate": "random", "n": 1}, "model": {"backend": "tiny"},
            "guide": {"iterations": 2, "lr": 1e-3}, "metrics": ["ID", "FID_pre"],
            "fid": {"num_samples": 8, "batch_size": 4}, "output_dir": "base-run", "device": "cpu"}
    path = _spec(tmp_path, n=1, base_job=base, space={"d": {"type": "grid", "values": [30.0, 10.0]}},
                 searcher={"kind": "grid"}, num_samples=1, max_concurrent_trials=1,
                 resources={"cpus": 1, "gpus": 0})
    spec, base_job = load_tune(path)
    run = run_tune(spec, base_job)
    out = write_outputs(spec, base_job, run.records)
    assert [r["status"] for r in run.records] == ["complete", "complete"]
    for r in run.records:
        assert 0.0 <= r["ID"] <= 1.0 and r["FID_pre"] >= 0.0 and r["stand_in"]
        trial = tmp_path / "out" / "trials" / r["trial_id"] / "artifacts" / "random-0000"
        assert json.loads((trial / "metrics.json").read_text())["guide"]["d"] == r["d"]
    assert load_job(out.paths["best_job"]).guide.d in (30.0, 10.0)


@pytest.mark.slow
@pytest.mark.parametrize("searcher, mode", [("optuna-tpe", "penalised"), ("optuna-nsga2", "pareto")])
def test_tiny_real_optuna_search(tmp_path: Path, searcher: str, mode: str) -> None:
    """Optuna on the real per-identity core: 3 trials (GUIDE's default + 2 sampled), damage LPIPS_drift."""
    path = _spec(tmp_path, n=1, base_job=_tiny_base(), space={"d": {"type": "uniform", "low": 10, "high": 60}},
                 searcher={"kind": searcher, "seed": 0}, num_samples=3, max_concurrent_trials=2,
                 objective={"mode": mode, "damage": "LPIPS_drift", "damage_bound": 0.5},
                 resources={"cpus": 1, "gpus": 0})
    spec, base_job = load_tune(path)
    run = run_tune(spec, base_job)
    out = write_outputs(spec, base_job, run.records)
    assert [r["status"] for r in run.records] == ["complete"] * 3
    assert sum(out.table["is_default"]) == 1 and len(set(out.table["d"])) == 3
    for r in run.records:
        assert 0.0 <= r["ID"] <= 1.0 and r["LPIPS_drift"] > 0.0 and r["damage"] == r["LPIPS_drift"]
        assert (r["damage_metric"], r["damage_samples"], r["damage_seed"]) == ("LPIPS_drift", 4, 0)
        trial = tmp_path / "out" / "trials" / r["trial_id"] / "artifacts" / "random-0000"
        record = json.loads((trial / "metrics.json").read_text())
        assert record["guide"]["d"] == r["d"] and record["metrics"]["LPIPS_drift"] == r["LPIPS_drift"]
    study = _optuna_study(spec)
    values = sorted(tuple(t.values) for t in study.trials if t.state.name == "COMPLETE")
    wanted = (("forgetting", "damage") if mode == "pareto" else ("objective",))
    assert _flat(values) == pytest.approx(_flat(sorted(tuple(r[k] for k in wanted) for r in run.records)))
    assert load_job(out.paths["best_job"]).guide.d == pytest.approx(out.best["d"])
