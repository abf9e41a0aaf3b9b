"""The scaling model's arithmetic, with pinned numbers."""

from __future__ import annotations

import pytest

from guide_ray.bench.scaling import Costs, costs_from_runs, predicted_wall, rate_per_hour

ONE = {"actors": 1, "ok": 4, "wall_s": 130.0, "identities_per_hour": 110.77, "identity_s_mean": 30.0}
TWO = {"actors": 2, "ok": 4, "wall_s": 80.0, "identities_per_hour": 180.0, "identity_s_mean": 36.0}


def test_costs_from_the_one_and_two_actor_runs():
    costs = costs_from_runs(ONE, TWO)
    assert costs.t_item == 30.0 and costs.t_fixed == 10.0                 # 130 - 4 x 30
    assert costs.share_efficiency == pytest.approx(180.0 / (2 * 110.77))
    assert costs_from_runs(ONE).share_efficiency == 1.0


def test_rate_scales_with_devices_and_shares_within_one():
    costs = Costs(t_item=36.0, t_fixed=10.0, share_efficiency=0.75)
    assert rate_per_hour(costs, 1)["identities_per_hour"] == 100.0
    assert rate_per_hour(costs, 4, 2)["identities_per_hour"] == 800.0       # 8 separate GPUs, no sharing loss
    shared = rate_per_hour(costs, 1, 1, per_gpu=4)
    assert shared["identities_per_hour"] == 300.0 and shared["actors"] == 4  # 4 x 0.75 x 100
    bound = rate_per_hour(Costs(36.0, 10.0, 1.0, t_driver=0.5), 100, 2)
    assert bound == {"gpus": 100, "nodes": 2, "per_gpu": 1, "actors": 200, "identities_per_hour": 7200.0,
                     "bound": "driver"}


def test_model_reproduces_the_one_actor_run_by_construction():
    costs = costs_from_runs(ONE, TWO)
    assert predicted_wall(costs, 4, 1) == pytest.approx(130.0, rel=1e-3)
    assert predicted_wall(costs, 4, 2) == pytest.approx(10.0 + 4 / (2 * costs.share_efficiency / 30.0), rel=1e-3)
