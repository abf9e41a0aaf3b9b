"""Identities/hour for N GPUs on M nodes, on paper, from measured per-identity costs.

Model, from the throughput benchmark's summaries (seconds):
  t_item  = one identity on one actor (row.seconds: source, unlearning, metrics, artifacts);
  t_fixed = once per run: cluster start, model loading, the pretrained FID statistics
            (1-actor wall − identities × t_item);
  e       = sharing efficiency of k actors on one device: throughput of 2 actors on the benchmark's
            host / (2 × one actor's); for k fractional actors on one GPU, benchmarks/gpu_check.sh
            measures it; separate GPUs do not share (e = 1);
  t_drv   = the driver's serial seconds per identity (scheduling + commit); not separable in
            the runs, so an input (default 0: the bound is then device time only).
With A = N × M × k actors: rate = min(A · e / t_item, 1 / t_drv) identities/s; a job of n
identities takes t_fixed + n / rate. The model is checked against the 1- and 2-actor runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Costs:
    t_item: float            # seconds per identity on one actor
    t_fixed: float           # seconds once per run
    share_efficiency: float  # 0 < e <= 1
    t_driver: float = 0.0    # serial driver seconds per identity (0 = not a bound)


def rate_per_hour(costs: Costs, gpus: int, nodes: int = 1, per_gpu: int = 1) -> dict[str, object]:
    """Steady-state identities/hour of `gpus` devices per node × `nodes`, `per_gpu` actors each; what bounds it."""
    actors = gpus * nodes * per_gpu
    eff = costs.share_efficiency if per_gpu > 1 else 1.0      # separate devices do not share
    by_actors = actors * eff / costs.t_item * 3600
    by_driver = 3600 / costs.t_driver if costs.t_driver > 0 else float("inf")
    return {"gpus": gpus, "nodes": nodes, "per_gpu": per_gpu, "actors": actors,
            "identities_per_hour": round(min(by_actors, by_driver), 2),
            "bound": "driver" if by_driver < by_actors else "device time"}


def costs_from_runs(one: dict, two: dict | None = None, t_driver: float = 0.0) -> Costs:
    """Costs from the throughput benchmark's 1-actor (and 2-actor) summaries."""
    t_item = one["identity_s_mean"]
    t_fixed = max(0.0, one["wall_s"] - one["ok"] * t_item)
    eff = 1.0
    if two is not None and one["identities_per_hour"] > 0:
        eff = min(1.0, two["identities_per_hour"] / (2 * one["identities_per_hour"]))
    return Costs(t_item=t_item, t_fixed=t_fixed, share_efficiency=eff, t_driver=t_driver)


def predicted_wall(costs: Costs, identities: int, actors: int) -> float:
    """Seconds a run of `identities` takes on `actors` actors sharing one device (the benchmark's host)."""
    rate = rate_per_hour(costs, 1, 1, actors)["identities_per_hour"] / 3600
    return costs.t_fixed + identities / rate
