"""`guide-ray run`: plan a job against what RUN already holds, then drive worker actors to the end.

Planning (`plan`, no Ray) reads the manifest, builds one WorkItem per valid row with its
run_key, and subtracts the committed rows with the same key (resume). A committed row with a
*different* key means the same identity was computed under other settings: the run refuses to
start (nothing is overwritten) unless `replace_stale` moves those rows to RUN/superseded/.
Invalid manifest rows are written to RUN/manifest_errors.json (they have no valid identity to
key a result file by) and counted in the report. RUN/job.resolved.json records the job as set and
with every default filled in, its keys and the code version before any work starts.

A run owns its folder while it runs (store.ownership: marker + exclusive lock), so a second run
on the same folder is refused at once. Damaged result files are quarantined while planning
(store.results.load_rows) and their identities planned again. Artifacts are staged per attempt
and promoted by the driver as part of committing a row (store.artifacts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import ray
from pydantic import ValidationError
from ray.exceptions import RayError, RayTaskError, UnserializableException

from guide_ray import __version__
from guide_ray.config.base import describe_validation_error, fingerprint
from guide_ray.config.job import (
    FidSpec,
    GeneratedManifest,
    JobSpec,
    ModelSpec,
    WorkItem,
    effective_guide,
    make_work_item,
)
from guide_ray.config.manifest import (
    ManifestRead,
    folder_rows,
    random_rows,
    read_manifest,
    with_variants,
    write_manifest,
)
from guide_ray.engine import actors, cluster
from guide_ray.engine.scheduler import Progress, Scheduler
from guide_ray.engine.worker import PipelineFactory, describe_exception
from guide_ray.errors import ConfigError, GuideRayError, ManifestRowError
from guide_ray.store import artifacts, ownership, results
from guide_ray.store.runkey import item_run_key, job_key
from guide_ray.models.weights import PHOTO_SCENARIOS
from guide_ray.store.schema import ResultRow
from guide_ray.utils.text import escape

log = logging.getLogger(__name__)

RESOLVED_JOB = "job.resolved.json"
INVERSION_SCENARIOS = frozenset(PHOTO_SCENARIOS)  # identities the backend's inverter makes from a photo


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that are not part of the job (and so not part of any run_key)."""

    address: str | None = None        # join this cluster instead of starting a local one
    limit: int | None = None          # overrides job.limit
    retry_failed: bool = False        # recompute identities whose committed row is `failed`
    replace_stale: bool = False       # move rows computed under other settings aside and recompute
    num_cpus: int | None = None       # local cluster only
    num_gpus: float | None = None     # local cluster only; may be logical


@dataclass(frozen=True)
class WeightsKey:
    """Weight fingerprints: `core` (generator, loss and metric networks) goes into the job_key;
    `encoder` (photo inversion) only into the run_key of identities inverted from a photo, so
    adding photo rows to a random-only run does not invalidate its finished rows."""

    core: str
    encoder: str | None


@dataclass
class Plan:
    """What a run will do; built without Ray."""

    job_key: str
    weights: WeightsKey
    todo: list[WorkItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)      # committed under the same run_key
    stale: list[ResultRow] = field(default_factory=list)  # committed under another run_key
    errors: list[ManifestRowError] = field(default_factory=list)


@dataclass(frozen=True)
class RunSummary:
    """Outcome of `run_job`, for the CLI's exit status and message."""

    run_dir: Path
    planned: int
    skipped: int
    ok: int
    failed: int
    invalid_rows: int

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.invalid_rows == 0


def weights_key(model: ModelSpec, metrics: tuple[str, ...], scenarios: set[str], fid: FidSpec) -> WeightsKey:
    """sha256s of the weight files a job reads, split by who depends on them (see WeightsKey).

    The model zoo (guide_ray.models.weights, from the backend registry guide_ray.config.backends)
    knows which files a backend, its metrics (with the FID extractors of `fid`) and its photo
    inversion method read; a missing or corrupt file fails here, before any Ray work. A job's own
    real-image statistics (fid.real_stats) count as a core file. On stylegan2-ffhq1024 the pSp file
    holds the generator and the encoder, so it is a core file.
    """
    from guide_ray.metrics.stats import fid_plan
    from guide_ray.models import weights as zoo

    weights_dir = Path(model.weights_dir) if model.weights_dir else zoo.resolve_weights_dir()
    plan = fid_plan(fid, metrics)
    core = zoo.require_backend_files(model.backend, weights_dir, metrics=metrics, fid_extractors=plan.kinds,
                                     guide_real_features=plan.guide_real_features)
    if plan.real is not None and fid.real_stats:
        core = {**core, "fid.real_stats": Path(fid.real_stats)}
    encoder_fp = None
    if scenarios & INVERSION_SCENARIOS:
        with_encoder = zoo.require_backend_files(model.backend, weights_dir, metrics=metrics,
                                                 scenarios=sorted(scenarios & INVERSION_SCENARIOS),
                                                 fid_extractors=plan.kinds,
                                                 guide_real_features=plan.guide_real_features,
                                                 inversion=model.inversion.resolved_method(model.backend))
        encoder_files = {k: v for k, v in with_encoder.items() if k not in core}
        # photo identities also depend on how they are inverted
        encoder_fp = fingerprint({"files": _digest(model.backend, encoder_files),
                                  "inversion": model.inversion.model_dump(mode="json")})
    return WeightsKey(core=_digest(model.backend, core), encoder=encoder_fp)


def _digest(backend: str, files: dict[str, Path]) -> str:
    from guide_ray.models.weights import file_sha256

    if not files:
        return f"{backend}:embedded"
    return fingerprint({name: file_sha256(path) for name, path in sorted(files.items())})


def resolve_manifest(job: JobSpec) -> Path:
    """The manifest's path; a generated manifest is (re)written to RUN/manifest.parquet first."""
    if isinstance(job.manifest, GeneratedManifest):
        spec = job.manifest
        if spec.generate == "random":
            rows = random_rows(spec.n, spec.seed)
        else:                                  # the same seed renders the same photos, byte for byte
            from guide_ray.world.photos import write_photo_folders
            domain = spec.generate.removeprefix("world_")
            root = job.run_dir / "photos" / domain
            write_photo_folders(root, domain, spec.n, spec.photos, spec.seed)
            rows = folder_rows(root, job.run_dir, spec.generate, spec.seed)
        return write_manifest(with_variants(rows, spec.variants), job.run_dir / "manifest.parquet")
    return Path(job.manifest)


def plan(job: JobSpec, options: RunOptions) -> Plan:
    """Items to run and rows to keep; raises ConfigError on stale rows unless `replace_stale`,
    WeightsMissing/WeightsInvalid when a weight file the job reads is absent or corrupt."""
    result, items = keyed_items(job)
    limit = options.limit or job.limit
    items = items[:limit] if limit else items
    done = results.committed(job.run_dir)
    for item in items:
        row = done.get(item.identity_id)
        if row is None or (row.run_key == item.run_key and row.status == "failed" and options.retry_failed):
            result.todo.append(item)
        elif row.run_key == item.run_key:
            result.skipped.append(item.identity_id)
        else:
            result.stale.append(row)
            result.todo.append(item)
    if result.stale and not options.replace_stale:
        ids = ", ".join(r.identity_id for r in result.stale[:5])
        raise ConfigError(
            f"{job.run_dir} already holds results computed under other settings for {len(result.stale)} "
            f"identities ({ids}{', ...' if len(result.stale) > 5 else ''}); nothing was overwritten. Use a new "
            "output_dir, or pass --replace-stale to move those rows to superseded/ and recompute them"
        )
    return result


def keyed_items(job: JobSpec) -> tuple[Plan, list[WorkItem]]:
    """Every valid manifest row as its WorkItem with its run_key, and an empty plan holding the keys
    and the rejected rows (`guide-ray verify` rebuilds a run's items with it)."""
    read = read_manifest(resolve_manifest(job))
    wkey = weights_key(job.model, job.metrics, {row.scenario for _, row in read.rows}, job.fid)
    result = Plan(job_key=job_key(job, wkey.core, __version__), weights=wkey, errors=list(read.errors))
    return result, _build_items(job, read, result)


def _build_items(job: JobSpec, read: ManifestRead, result: Plan) -> list[WorkItem]:
    items = []
    for number, row in read.rows:
        variant = row.variant or job.variant
        try:
            guide = effective_guide(job, variant, row.overrides)
        except ValidationError as exc:
            result.errors.append(ManifestRowError(number, row.identity_id, describe_validation_error(exc)))
            continue
        except (ConfigError, ValueError) as exc:
            result.errors.append(ManifestRowError(number, row.identity_id, str(exc)))
            continue
        encoder = result.weights.encoder if row.scenario in INVERSION_SCENARIOS else None
        key = item_run_key(result.job_key, row, variant, guide, encoder=encoder)
        items.append(make_work_item(job, row, read.path.parent, run_key=key, guide=guide))
    result.errors.sort(key=lambda e: e.row)
    return items


def write_run_records(job: JobSpec, the_plan: Plan) -> None:
    """RUN/manifest_errors.json and RUN/job.resolved.json, written before any work starts."""
    run_dir = job.run_dir
    errors = [{"row": e.row, "identity_id": e.identity_id, "reason": e.reason} for e in the_plan.errors]
    results.write_manifest_errors(run_dir, errors)
    resolved = {  # "job" as set (what `guide-ray verify` rebuilds the run from); "resolved": every field
        "job": job.model_dump(mode="json", exclude_unset=True),
        "resolved": job.model_dump(mode="json"),
        "job_fingerprint": fingerprint(job),
        "job_key": the_plan.job_key,
        "weights_fingerprint": the_plan.weights.core,
        "encoder_fingerprint": the_plan.weights.encoder,
        "code_version": __version__,
    }
    (run_dir / RESOLVED_JOB).write_text(json.dumps(resolved, indent=2, sort_keys=True) + "\n")


def run_job(
    job: JobSpec,
    options: RunOptions = RunOptions(),
    *,
    pipeline_factory: PipelineFactory | None = None,
    progress: Progress | None = None,
    on_commit: Callable[[ResultRow], None] | None = None,
) -> RunSummary:
    """Plan, then process every pending identity on worker actors; each result committed at once.

    `on_commit` runs after each row is durable (the CLI logs, tests count or interrupt).
    Raises GuideRayError for run-level problems (bad job/manifest, workers that cannot start).
    """
    job = _absolute_dirs(job)  # workers may run in another working directory
    with ownership.own(job.run_dir):
        the_plan = plan(job, options)
        write_run_records(job, the_plan)
        results.sweep_tmp(job.run_dir)
        artifacts.sweep_staging(job.run_dir)
        for row in the_plan.stale:
            moved = results.supersede(job.run_dir, row)
            artifacts.move_aside(job.run_dir, row.identity_id, moved.with_suffix(""))
            log.warning("%s was computed under other settings; moved to %s", escape(row.identity_id), moved)
        for err in the_plan.errors:
            log.error("%s", escape(err))
        log.info("%d to run, %d already done, %d invalid manifest rows", len(the_plan.todo), len(the_plan.skipped),
                 len(the_plan.errors))
        ok = failed = 0
        if the_plan.todo:
            ok, failed = _execute(job, options, the_plan, pipeline_factory, progress, on_commit)
    return RunSummary(run_dir=job.run_dir, planned=len(the_plan.todo) + len(the_plan.skipped),
                      skipped=len(the_plan.skipped), ok=ok, failed=failed, invalid_rows=len(the_plan.errors))


def _absolute_dirs(job: JobSpec) -> JobSpec:
    """The job with absolute output and cache folders. Only what the job set is dumped and re-read, so
    every other field stays a default (a variant may still set it; a full dump made every field look
    explicit and each row variant other than the job's clashed with it)."""
    data = job.model_dump(exclude_unset=True)
    data["output_dir"] = str(Path(job.output_dir).resolve())
    data["cache_dir"] = str(Path(job.cache_dir).resolve()) if job.cache_dir else None
    return JobSpec.model_validate(data)


def _execute(
    job: JobSpec,
    options: RunOptions,
    the_plan: Plan,
    factory: PipelineFactory | None,
    progress: Progress | None,
    on_commit: Callable[[ResultRow], None] | None,
) -> tuple[int, int]:
    def commit(row: ResultRow) -> None:
        if row.status == "ok":  # artifacts first: a visible ok row always has its files in place
            staged = {"artifact_weights": row.artifact_weights, "artifact_grid": row.artifact_grid}
            row = row.model_copy(update=artifacts.promote(job.run_dir, row.identity_id, staged))
        results.commit_row(job.run_dir, row)
        if on_commit is not None:
            on_commit(row)

    with cluster.ray_session(options.address, num_cpus=options.num_cpus, num_gpus=options.num_gpus,
                             run_dir=job.run_dir):
        n = cluster.actor_count(job, len(the_plan.todo), cluster.capacity())
        prefix = f"{job.name}-{uuid4().hex[:6]}"
        slots = [actors.start_worker(job, the_plan.job_key, f"{prefix}-w{i}", factory) for i in range(n)]

        def spawn(k: int) -> actors.ActorSlot:
            slots.append(actors.start_worker(job, the_plan.job_key, f"{prefix}-r{k}", factory))
            return slots[-1]

        try:
            _start(slots)
            scheduler = Scheduler(job, the_plan.job_key, list(slots), commit=commit, spawn=spawn, progress=progress)
            counts = scheduler.run(the_plan.todo)
        finally:
            for slot in slots:
                actors.stop_worker(slot)
    return counts.ok, counts.failed


def _start(slots: list[actors.ActorSlot]) -> None:
    """Load every worker's networks, then let the first compute the shared cached statistics.

    Only then do items flow, so N actors never compute the same FID statistics at once. A
    failure here is a run-level error (e.g. missing weights), re-raised as the original error.
    """
    log.info("starting %d worker(s): %s", len(slots), ", ".join(s.name for s in slots))
    refs = [actors.submit_ready(s) for s in slots]
    for slot, ref in zip(slots, refs, strict=True):
        slot.placement = _unwrap(ref, f"worker {slot.name} could not start")
    _unwrap(actors.submit_prepare(slots[0]), "computing the pretrained statistics failed")


def _unwrap(ref: ray.ObjectRef, what: str) -> object:
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, GuideRayError):
            raise exc.cause from None
        raise GuideRayError(f"{what}: {describe_exception(exc.cause or exc)}") from exc
    except UnserializableException as exc:  # an error class whose __init__ pickle cannot replay
        last_line = str(exc).strip().splitlines()[-1]  # "module.Type: message" of the original
        raise GuideRayError(f"{what}: {last_line}") from exc
    except RayError as exc:
        raise GuideRayError(f"{what}: {describe_exception(exc)}") from exc
