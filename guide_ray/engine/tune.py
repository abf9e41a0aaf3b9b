"""`guide-ray tune`: a Ray Tune search whose trials run the per-identity core of `guide-ray run`.

A trial is a job (guide_ray.config.tune.trial_job): the base job with the trial's values in
`guide:`. Its identities are planned by `engine.run.plan`, the planner of `guide-ray run`, so
variant and row overrides, seeds and run_keys are those a run of the same job would use; each is
unlearned by the same `Pipeline.run`. After each identity the trial reports running means and a
checkpoint holding every per-identity result so far; a restarted trial (FailureConfig) reads it
back with `tune.get_checkpoint()` and skips the identities it holds. An interrupted search is
continued with `Tuner.restore`, which never reruns a finished trial. Ray Tune's current API only
(`ray.tune.report`, `ray.tune.get_checkpoint`, `ray.tune.RunConfig`); never `ray.train.*` here.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator

from guide_ray.config.job import JobSpec
from guide_ray.config.tune import (
    OPTUNA_SEARCHERS,
    Asha,
    Choice,
    Grid,
    Integer,
    LogUniform,
    TuneSpec,
    damage_settings,
    default_point,
    forgetting,
    penalised,
    trial_job,
)
from guide_ray.engine import cluster
from guide_ray.engine.run import RunOptions, plan
from guide_ray.engine.worker import PipelineFactory, default_pipeline_factory, describe_exception
from guide_ray.errors import ConfigError, GuideRayError
from guide_ray.utils.device import pick_device
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "identities.json"
OBJECTIVE = "objective"
PARETO_METRICS = ("forgetting", "damage")   # what optuna-nsga2 minimises, both reported by every trial
ASHA_MAX_T = 1_000_000  # reports; far above identities x (1 + iterations / report_every_steps)


def experiment_path(spec: TuneSpec) -> Path:
    return Path(spec.storage_path or Path(spec.output_dir) / "ray") / spec.name


def trials_dir(spec: TuneSpec) -> Path:
    return Path(spec.output_dir) / "trials"


def param_space(spec: TuneSpec) -> dict[str, object]:
    """Ray Tune's distributions of the searched fields (keys stay the dotted GuideConfig names)."""
    space: dict[str, object] = {}
    for key, dim in spec.space.items():
        if isinstance(dim, Grid):
            space[key] = tune.grid_search(list(dim.values))
        elif isinstance(dim, Choice):
            space[key] = tune.choice(list(dim.values))
        elif isinstance(dim, Integer):
            space[key] = tune.randint(dim.low, dim.high + 1)  # Ray's upper bound is exclusive
        elif isinstance(dim, LogUniform):
            space[key] = tune.loguniform(dim.low, dim.high)
        else:
            space[key] = tune.uniform(dim.low, dim.high)
    return space


def summarise(done: list[dict], spec: TuneSpec, job: JobSpec, total: int) -> dict[str, object]:
    """Running means over the ok identities of `done`, the objective they give, and which damage
    metric (samples or probes, seed) they were measured with."""
    ok = [r for r in done if r["status"] == "ok"]

    def mean(values: list[float | None]) -> float:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    damage_name = spec.objective.damage
    forget = mean([forgetting(r["metrics"]) for r in ok])
    damage = mean([r["metrics"].get(damage_name) for r in ok])
    out: dict[str, object] = {
        m: mean([r["metrics"].get(m) for r in ok]) for m in sorted({k for r in ok for k in r["metrics"]})}
    objective = penalised(forget, damage, spec.objective) if not math.isnan(forget + damage) else float("nan")
    out |= {"forgetting": forget, "damage": damage, **damage_settings(spec, job), OBJECTIVE: objective,
            "feasible": bool(damage <= spec.objective.damage_bound),
            "identities_done": len(done), "identities_ok": len(ok), "identities_total": total,
            "stand_in": any(r.get("stand_in", False) for r in ok)}
    return out


def make_trainable(spec: TuneSpec, base: JobSpec,
                   factory: PipelineFactory | None = None) -> Callable[[dict], None]:
    """The function trainable; `factory` builds the per-identity core (tests pass a fake)."""

    def trainable(config: dict) -> None:
        trial_id = tune.get_context().get_trial_id()
        overrides = {key: config[key] for key in spec.space}
        job = trial_job(spec, base, overrides, trials_dir(spec) / trial_id, cache_dir=shared_cache(spec, base))
        the_plan = plan(job, RunOptions())
        if not the_plan.todo:
            raise ConfigError(f"trial {trial_id}: no valid validation identity: {the_plan.errors}")
        done = _read_checkpoint(tune.get_checkpoint())
        finished = {r["identity_id"] for r in done}
        total = len(the_plan.todo)
        device = pick_device(job.device, tuple(str(g) for g in ray.get_gpu_ids()))
        pipeline = (factory or default_pipeline_factory)(job, device)
        pipeline.prepare(job.fid_cache_dir)
        for item in the_plan.todo:
            if item.identity_id in finished:
                continue
            record = {"identity_id": item.identity_id, "seed": item.seed, "run_key": item.run_key}
            try:
                kwargs = {"on_step": _step_reporter(spec, job, done, total)} if spec.report_every_steps else {}
                outcome = pipeline.run(item, job.run_dir / "artifacts" / item.identity_id, **kwargs)
                record |= {"status": "ok", "metrics": dict(outcome.metrics), "stand_in": outcome.stand_in,
                           "seconds": outcome.seconds}
            except Exception as exc:  # one bad identity is recorded, the trial goes on
                log.exception("trial %s: %s failed", trial_id, escape(item.identity_id))
                record |= {"status": "failed", "error": describe_exception(exc), "metrics": {}}
            done.append(record)
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / CHECKPOINT_FILE).write_text(json.dumps(done, default=str))
                tune.report(summarise(done, spec, job, total), checkpoint=tune.Checkpoint.from_directory(tmp))
        if not any(r["status"] == "ok" for r in done):
            raise GuideRayError(f"trial {trial_id}: every validation identity failed: "
                                f"{done[0].get('error', '?')}")

    return trainable


def shared_cache(spec: TuneSpec, base: JobSpec) -> Path:
    """One FID-statistics cache for every trial (keyed by fingerprint), so G_s's statistics are computed once."""
    return Path(base.cache_dir) if base.cache_dir else Path(spec.output_dir) / "cache"


def _step_reporter(spec: TuneSpec, job: JobSpec, done: list[dict], total: int) -> Callable[[int, object], bool]:
    """An on_step hook reporting every K steps, once an identity is done (so every report has a
    real objective): the loss of the running identity plus the running means so far."""

    def hook(step: int, parts: object) -> bool:
        if done and (step + 1) % spec.report_every_steps == 0:
            tune.report({**summarise(done, spec, job, total), "step": step + 1, "loss": float(parts.total)})
        return False

    return hook


def _read_checkpoint(checkpoint: tune.Checkpoint | None) -> list[dict]:
    if checkpoint is None:
        return []
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / CHECKPOINT_FILE).read_text())


def _searcher(spec: TuneSpec) -> object:
    points = [default_point(spec)] if spec.searcher.include_default else None
    if spec.searcher.kind not in OPTUNA_SEARCHERS:
        # a grid's default value is one of its cells already; points_to_evaluate would run it twice
        if spec.searcher.kind == "grid":
            points = None
        return BasicVariantGenerator(points_to_evaluate=points, random_state=spec.searcher.seed,
                                     max_concurrent=spec.max_concurrent_trials)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    startup = spec.searcher.startup(spec.num_samples)
    if spec.searcher.kind == "optuna-nsga2":   # both objectives, each minimised: the Pareto search
        sampler = optuna.samplers.NSGAIISampler(population_size=startup, seed=spec.searcher.seed)
        return OptunaSearch(metric=list(PARETO_METRICS), mode=["min", "min"], points_to_evaluate=points,
                            sampler=sampler)
    sampler = optuna.samplers.TPESampler(n_startup_trials=startup, seed=spec.searcher.seed)
    return OptunaSearch(metric=OBJECTIVE, mode="min", points_to_evaluate=points, sampler=sampler)


def _tune_config(spec: TuneSpec) -> tune.TuneConfig:
    scheduler = FIFOScheduler()
    if isinstance(spec.scheduler, Asha):
        # max_t: ASHA ends every trial that reaches it; a trial ends by itself after its identities
        scheduler = ASHAScheduler(time_attr="training_iteration", grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor, max_t=ASHA_MAX_T)
    searcher = _searcher(spec)
    multi = spec.searcher.kind == "optuna-nsga2"
    # BasicVariantGenerator limits concurrency itself (Tune ignores max_concurrent_trials for it)
    limit = spec.max_concurrent_trials if spec.searcher.kind in OPTUNA_SEARCHERS else None
    return tune.TuneConfig(metric=None if multi else OBJECTIVE, mode=None if multi else "min",
                           search_alg=searcher, scheduler=scheduler,
                           num_samples=spec.num_samples, max_concurrent_trials=limit)


@dataclass(frozen=True)
class TuneRun:
    records: list[dict]   # one per trial, see `trial_records`
    interrupted: bool     # Ctrl-C: some trial neither finished nor failed; `--resume` continues it


def run_tune(spec: TuneSpec, base: JobSpec, *, resume: bool = False, factory: PipelineFactory | None = None,
             address: str | None = None, num_cpus: int | None = None,
             num_gpus: float | None = None) -> TuneRun:
    """Run (or with `resume`, continue) the search.

    Refuses to start a new search over an existing experiment (nothing is overwritten) and to
    resume one that does not exist, before Ray starts.
    """
    path = experiment_path(spec)
    exists = tune.Tuner.can_restore(str(path))
    if exists and not resume:
        raise ConfigError(f"{path} already holds the search {spec.name!r}; continue it with "
                          "`guide-ray tune --resume`, or give the spec a new name or output_dir")
    if resume and not exists:
        raise ConfigError(f"--resume: no search to continue at {path}")
    trainable = tune.with_resources(make_trainable(spec, base, factory),
                                    {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})
    with cluster.ray_session(address, num_cpus=num_cpus, num_gpus=num_gpus):
        if resume:
            tuner = tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
        else:
            run_config = tune.RunConfig(
                name=spec.name, storage_path=str(path.parent),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=spec.max_failures), verbose=1)
            tuner = tune.Tuner(trainable, param_space=param_space(spec), tune_config=_tune_config(spec),
                               run_config=run_config)
        records = trial_records(spec, tuner.fit())
        return TuneRun(records=records, interrupted=was_interrupted(spec, records))


def was_interrupted(spec: TuneSpec, records: list[dict]) -> bool:
    """Fewer trials than the search holds, or (without a scheduler that stops trials) a trial that saw
    only part of its identities: Tune ended on Ctrl-C. (Tune marks trials it stops on Ctrl-C
    TERMINATED, like finished ones, so the records are what tells.) With ASHA a trial stopped on
    Ctrl-C looks like one ASHA stopped; only missing trials tell there."""
    expected = spec.num_samples * math.prod(len(d.values) for d in spec.space.values() if isinstance(d, Grid))
    if len(records) < expected:
        return True
    return not isinstance(spec.scheduler, Asha) and any(r["status"] == "stopped" for r in records)


def trial_records(spec: TuneSpec, grid: tune.ResultGrid) -> list[dict]:
    """One dict per trial: its searched values, its last report, its status and error."""
    records = []
    for result in grid:
        metrics = dict(result.metrics or {})
        done, total = metrics.get("identities_done", 0), metrics.get("identities_total")
        if result.error is not None:
            status = "error"
        elif total is not None and done >= total:
            status = "complete"
        else:
            status = "stopped"
        # a trial that never reported has no trial_id yet: its folder is <trainable>_<experiment>_<n>_...
        record = {"trial_id": metrics.get("trial_id") or "_".join(Path(result.path).name.split("_")[1:3]),
                  **{key: result.config.get(key) for key in spec.space}, "status": status,
                  "error": describe_exception(result.error) if result.error is not None else None}
        for key, value in metrics.items():
            if key not in record and not isinstance(value, dict) and key not in _RAY_KEYS:
                record[key] = value
        records.append(record)
    return records


_RAY_KEYS = {"timestamp", "checkpoint_dir_name", "done", "date", "pid", "hostname", "node_ip", "config",
             "time_since_restore", "iterations_since_restore", "time_this_iter_s", "experiment_tag", "step",
             "loss"}
