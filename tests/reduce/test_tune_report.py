"""Pareto front and best-trial choice of the tune outputs (pure pandas, no Ray)."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from guide_ray.config.tune import load_tune
from guide_ray.reduce.tune_report import pareto_front, pick_best, trial_table


def test_pareto_front_golden() -> None:
    points = [(0.5, 1.0), (0.4, 2.0), (0.6, 1.5), (0.4, 2.5), (math.nan, 0.1), (0.3, 3.0)]
    # (0.6, 1.5) is dominated by (0.5, 1.0); (0.4, 2.5) by (0.4, 2.0); NaN never on the front
    assert pareto_front(points) == [True, True, False, False, False, True]


def _spec(tmp_path: Path, mode: str) -> Path:
    spec = {"name": "t", "validation": {"limit": 1}, "output_dir": "out",
            "base_job": {"name": "b", "manifest": {"generate": "random", "n": 1}, "output_dir": "run"},
            "space": {"d": {"type": "uniform", "low": 10, "high": 60}},
            "objective": {"damage_bound": 1.0, "mode": mode}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _records() -> list[dict]:
    return [
        {"trial_id": "a", "d": 30.0, "status": "complete", "forgetting": 0.5, "damage": 0.5, "objective": 0.5,
         "feasible": True},
        {"trial_id": "b", "d": 50.0, "status": "complete", "forgetting": 0.2, "damage": 1.5, "objective": 5.2,
         "feasible": False},
        {"trial_id": "c", "d": 40.0, "status": "complete", "forgetting": 0.4, "damage": 0.9, "objective": 0.4,
         "feasible": True},
        {"trial_id": "d", "d": 60.0, "status": "stopped", "forgetting": 0.1, "damage": 0.1, "objective": 0.1,
         "feasible": True},
    ]


def test_best_is_a_complete_trial_and_default_is_marked(tmp_path: Path) -> None:
    spec, _ = load_tune(_spec(tmp_path, "penalised"))
    table = trial_table(spec, _records())
    assert table["is_default"].tolist() == [True, False, False, False]
    assert table["pareto"].tolist() == [True, True, True, False]    # the stopped trial is not compared
    assert pick_best(spec, table)["trial_id"] == "c"                 # not d: it saw fewer identities


def test_pareto_mode_picks_lowest_feasible_forgetting(tmp_path: Path) -> None:
    spec, _ = load_tune(_spec(tmp_path, "pareto"))
    assert pick_best(spec, trial_table(spec, _records()))["trial_id"] == "c"   # b forgets more but is infeasible
