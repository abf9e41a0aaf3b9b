"""`guide-ray verify RUN`: attack every unlearned identity of a run, one VerifyRow per identity.

The run's own record says what to verify: RUN/job.resolved.json gives the job (and its `verify:`
settings), the manifest gives each identity's WorkItem (engine.run.keyed_items), and a committed
`ok` result row with the same run_key gives its G_u artifact. Identities already verified under
the same verify_key are skipped (a finished row, ok or failed, is never recomputed); a row under
another key is refused, never overwritten. The work goes through the run's Scheduler on
VerifyWorker actors, one identity per item, and the driver commits each row atomically. The run
folder is held (store.ownership) for the whole verification, as a run holds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from uuid import uuid4

from pydantic import ValidationError

from guide_ray import __version__
from guide_ray.config.backends import backend_info
from guide_ray.config.base import describe_validation_error, fingerprint
from guide_ray.config.job import JobSpec
from guide_ray.config.verify import CALIBRATION_STATISTIC, VerifySpec
from guide_ray.engine import actors, cluster
from guide_ray.engine.run import RESOLVED_JOB, _start, keyed_items
from guide_ray.engine.scheduler import Progress, Scheduler
from guide_ray.engine.verify_worker import VerifierFactory, VerifyItem, verify_failed_row
from guide_ray.errors import ConfigError
from guide_ray.store import artifacts, ownership, results
from guide_ray.store.runkey import KEY_LENGTH
from guide_ray.store.verify import (
    VERIFY,
    VerifyRow,
    commit_verify_row,
    load_verify_rows,
    sweep_verify_tmp,
    verify_dir,
)
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyOptions:
    """Command-line choices of one verification."""

    identities: tuple[str, ...] = ()    # only these (each must be an identity of the run); () = all
    threshold: float | None = None      # overrides verify.threshold
    address: str | None = None
    num_cpus: int | None = None
    num_gpus: float | None = None


@dataclass
class VerifyPlan:
    """What a verification will do; built without Ray."""

    job: JobSpec
    spec: VerifySpec
    todo: list[VerifyItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)       # verified already under the same key
    unavailable: list[str] = field(default_factory=list)   # no ok result row of the current settings


@dataclass(frozen=True)
class VerifySummary:
    planned: int
    skipped: int
    unavailable: int
    ok: int
    failed: int


def load_run_job(run_dir: Path) -> JobSpec:
    """The job a run folder was made by; ConfigError (one line) when `run_dir` is not a run."""
    if not run_dir.is_dir() or not ownership.is_run_dir(run_dir):
        raise ConfigError(f"{run_dir} is not a guide-ray run folder (no {ownership.MARKER} marker); "
                          "give the output_dir of a `guide-ray run`")
    path = run_dir / RESOLVED_JOB
    try:
        data = json.loads(path.read_text())["job"]
        return JobSpec.model_validate({**data, "output_dir": str(run_dir.resolve())})
    except (OSError, ValueError, KeyError) as exc:
        reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        raise ConfigError(f"{path}: cannot read the run's resolved job ({reason})") from exc


def verify_spec(job: JobSpec, options: VerifyOptions) -> VerifySpec:
    """The job's `verify:` settings (or the defaults) with --threshold on top, re-validated; refuses a
    threshold-less verification on a backend without a calibration population."""
    data = (job.verify or VerifySpec()).model_dump()
    if options.threshold is not None:
        data["threshold"] = options.threshold
    try:
        spec = VerifySpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"verify settings: {describe_validation_error(exc)}") from exc
    if spec.threshold is None and not backend_info(job.model.backend).calibrates:
        raise ConfigError(f"backend {job.model.backend!r} has no population of distinct identities to calibrate "
                          "the match threshold on; give one with --threshold or verify.threshold")
    return spec


def verify_key(run_key: str, spec: VerifySpec) -> str:
    return fingerprint({"run_key": run_key, "verify": spec.model_dump(mode="json"),
                        "calibration": CALIBRATION_STATISTIC, "code_version": __version__})[:KEY_LENGTH]


def plan_verify(run_dir: Path, options: VerifyOptions) -> VerifyPlan:
    """Items to verify; ConfigError for an unknown identity or a row verified under other settings."""
    job = load_run_job(run_dir)
    spec = verify_spec(job, options)
    keying, items = keyed_items(job)
    for err in keying.errors:              # rows the run could not key either: said, as `run` says them
        log.error("%s", escape(err))
    by_id = {item.identity_id: item for item in items}
    unknown = [i for i in options.identities if i not in by_id]
    if unknown:
        raise ConfigError(f"unknown identity {unknown[0]!r}: not in the manifest of {run_dir} "
                          f"({len(by_id)} identities, e.g. {', '.join(list(by_id)[:3])})")
    wanted = options.identities or tuple(by_id)
    result_rows, verified = results.committed(run_dir), {r.identity_id: r for r in load_verify_rows(run_dir)}
    the_plan = VerifyPlan(job=job, spec=spec)
    stale = []
    for identity in wanted:
        work, row = by_id[identity], result_rows.get(identity)
        if row is None or row.status != "ok" or row.run_key != work.run_key or row.artifact_weights is None:
            the_plan.unavailable.append(identity)
            continue
        key = verify_key(row.run_key, spec)
        done = verified.get(identity)
        if done is not None and done.verify_key == key:
            the_plan.skipped.append(identity)
        elif done is not None:
            stale.append(identity)
        else:
            the_plan.todo.append(VerifyItem(identity_id=identity, work=work, ID=row.ID, verify_key=key,
                                            unlearned=str(run_dir / row.artifact_weights)))
    if stale:
        raise ConfigError(f"{run_dir / VERIFY} holds verifications under other settings for {len(stale)} identities "
                          f"({', '.join(stale[:5])}); nothing was overwritten. Move {VERIFY}/ aside to verify again")
    return the_plan


def verify_run(run_dir: Path, options: VerifyOptions = VerifyOptions(), *, factory: VerifierFactory | None = None,
               progress: Progress | None = None,
               on_commit: Callable[[VerifyRow], None] | None = None) -> VerifySummary:
    """Plan, then verify every pending identity on verify actors; each row committed at once."""
    run_dir = run_dir.resolve()
    load_run_job(run_dir)                   # refuses a folder that is not a run before taking its lock
    with ownership.own(run_dir):
        the_plan = plan_verify(run_dir, options)
        sweep_verify_tmp(run_dir)
        artifacts.sweep_staging(verify_dir(run_dir))
        for identity in the_plan.unavailable:
            log.warning("%s has no ok result row under the run's current settings; not verified", escape(identity))
        log.info("%d to verify, %d already verified", len(the_plan.todo), len(the_plan.skipped))
        ok = failed = 0
        if the_plan.todo:
            ok, failed = _execute(run_dir, the_plan, options, factory, progress, on_commit)
    return VerifySummary(planned=len(the_plan.todo) + len(the_plan.skipped), skipped=len(the_plan.skipped),
                         unavailable=len(the_plan.unavailable), ok=ok, failed=failed)


def _execute(run_dir: Path, the_plan: VerifyPlan, options: VerifyOptions, factory: VerifierFactory | None,
             progress: Progress | None, on_commit: Callable[[VerifyRow], None] | None) -> tuple[int, int]:
    job, spec = the_plan.job, the_plan.spec

    def commit(row: VerifyRow) -> None:
        if row.status == "ok":  # images first: a visible ok row always has its files in place
            row = row.model_copy(update=_promote(run_dir, row))
        commit_verify_row(run_dir, row)
        if on_commit is not None:
            on_commit(row)

    with cluster.ray_session(options.address, num_cpus=options.num_cpus, num_gpus=options.num_gpus, run_dir=run_dir):
        n = cluster.actor_count(job, len(the_plan.todo), cluster.capacity())
        prefix = f"{job.name}-verify-{uuid4().hex[:6]}"
        slots = [actors.start_verify_worker(job, spec, f"{prefix}-w{i}", factory) for i in range(n)]

        def spawn(k: int) -> actors.ActorSlot:
            slots.append(actors.start_verify_worker(job, spec, f"{prefix}-r{k}", factory))
            return slots[-1]

        try:
            _start(slots)
            scheduler = Scheduler(job, "", list(slots), commit=commit, spawn=spawn, progress=progress,
                                  failed=verify_failed_row)
            counts = scheduler.run(the_plan.todo)
        finally:
            for slot in slots:
                actors.stop_worker(slot)
    return counts.ok, counts.failed


def _promote(run_dir: Path, row: VerifyRow) -> dict[str, str | None]:
    """Move the row's staged images to RUN/verify/artifacts/<id>/; their run-relative paths."""
    staged = {k: getattr(row, k) for k in ("artifact_attack", "artifact_collateral")}
    inside = {k: None if p is None else PurePosixPath(p).relative_to(VERIFY).as_posix() for k, p in staged.items()}
    moved = artifacts.promote(verify_dir(run_dir), row.identity_id, inside)
    return {k: None if p is None else f"{VERIFY}/{p}" for k, p in moved.items()}
