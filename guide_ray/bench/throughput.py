"""Identities per hour through the real engine (`engine.run.run_job`, local Ray) for 1, 2, ... actors.

Each actor count gets a fresh run folder under OUT, the same job (the quickstart by default) with
`num_actors` set and enough identities for every actor to get several. Wall time is measured
around `run_job` (start-up, model loading, scheduling and commits included). Each identity's
stage seconds come from its metrics.json (pipeline.STAGES, measured in the worker); the engine
overhead is the share of actor time (wall × actors) not spent in unlearning or metrics.

The pretrained generator's FID statistics are metric work that every run on a machine shares
(cached on disk by fingerprint): `warm_statistics` computes them once into the runs' shared cache
before any timed run and reports their seconds, so that no actor count pays them and the others not.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from guide_ray.config.job import JobSpec
from guide_ray.engine.run import RunOptions, run_job
from guide_ray.store import artifacts, results

WORK_STAGES = ("unlearning", "metrics")   # what the engine exists to run; everything else is overhead


def job_for(job: JobSpec, actors: int, identities: int, out: Path) -> JobSpec:
    """`job` with `actors` actors on a generated manifest of `identities` rows, writing to `out`."""
    raw = job.model_dump(mode="json")
    if isinstance(job.manifest, str):
        raise ValueError("the throughput benchmark generates its identities: use a job with `manifest: {generate: ...}`")
    raw["manifest"] = {**raw["manifest"], "n": identities}
    raw.update(num_actors=actors, output_dir=str(out), limit=None, cache_dir=str(out.parent / "fid-cache"))
    return JobSpec.model_validate(raw)


def warm_statistics(job: JobSpec, out: Path) -> float:
    """Compute (or find) the job's pretrained FID statistics in the runs' shared cache; → seconds taken."""
    from guide_ray.pipeline import Pipeline
    from guide_ray.utils.device import pick_device

    spec = job_for(job, 1, 1, out / "statistics")
    start = time.perf_counter()
    Pipeline(spec, pick_device(spec.device)).prepare(spec.fid_cache_dir)
    return round(time.perf_counter() - start, 2)


def stage_seconds(run_dir: Path, identity_id: str) -> dict[str, float]:
    record = json.loads((artifacts.artifact_dir(run_dir, identity_id) / "metrics.json").read_text())
    return record.get("stage_seconds") or {}


def measure(job: JobSpec, actors: int, identities: int, out: Path, num_cpus: int | None = None) -> dict[str, object]:
    """Run the job with `actors` actors into a fresh folder out/actors-N and summarise it."""
    run_dir = out / f"actors-{actors}"
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} is not empty; give the benchmark a fresh --out")
    spec = job_for(job, actors, identities, run_dir)
    start = time.perf_counter()
    summary = run_job(spec, RunOptions(num_cpus=num_cpus))
    wall = time.perf_counter() - start
    rows = [r for r in results.load_rows(run_dir).rows if r.status == "ok"]
    stages: dict[str, list[float]] = {}
    for row in rows:
        for name, sec in stage_seconds(run_dir, row.identity_id).items():
            stages.setdefault(name, []).append(sec)
    work = sum(sum(stages.get(s, [])) for s in WORK_STAGES)
    in_identity = sum(sum(v) for k, v in stages.items() if k not in WORK_STAGES)   # source, artifacts
    per_identity = [r.seconds for r in rows]
    return {
        "actors": actors, "identities": identities, "ok": summary.ok, "failed": summary.failed,
        "wall_s": round(wall, 2), "identities_per_hour": round(len(rows) / wall * 3600, 2) if rows else 0.0,
        "identity_s_median": round(statistics.median(per_identity), 3) if rows else None,
        "identity_s_mean": round(statistics.fmean(per_identity), 3) if rows else None,
        "stage_s_mean": {k: round(statistics.fmean(v), 3) for k, v in stages.items()},
        "engine_overhead": round(1 - work / (wall * actors), 4) if rows else None,
        # the overhead split: inside each identity (source latent, artifacts) and outside any (start-up,
        # model loading, scheduling, commits, actors idle at the end)
        "overhead_in_identities": round(in_identity / (wall * actors), 4) if rows else None,
        "overhead_outside": round(1 - (work + in_identity) / (wall * actors), 4) if rows else None,
        "iterations": spec.guide.iterations,
    }
