"""TuneSpec: the `guide-ray tune TUNE.yaml` file, validated completely before Ray starts.

A search is a base job (a job YAML, or the job inline) plus a search space over GuideConfig's
dotted fields. Every trial is that base job with the trial's values written into `guide:` — the
same JobSpec a user would run with `guide-ray run` — so a trial resolves its configuration
(variant, manifest-row overrides) and seeds exactly as a run does, and the best trial is written
out as a runnable job. Unknown keys, dotted names that are not GuideConfig fields, empty or
inverted ranges and values GuideConfig would refuse all fail here with a ConfigError naming the
field. No torch, no ray.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from guide_ray.config.base import GpuCount, StrictModel, describe_validation_error
from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import JOB_NAME_PATTERN, GeneratedManifest, JobSpec, effective_guide, load_job, parse_job
from guide_ray.config.metrics import FID_PRE, ID, ID_OTHERS, LPIPS_DRIFT
from guide_ray.errors import ConfigError

OPTUNA_SEARCHERS = ("optuna-tpe", "optuna-nsga2")
OPTIONAL_EXTRA = "pip install 'guide-ray[tune]'"
DAMAGE_METRICS = (FID_PRE.name, LPIPS_DRIFT.name)


class Uniform(StrictModel):
    type: Literal["uniform"]
    low: float
    high: float


class LogUniform(StrictModel):
    type: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float = Field(gt=0)


class Integer(StrictModel):
    type: Literal["integer"]
    low: int
    high: int = Field(description="inclusive")


class Choice(StrictModel):
    type: Literal["choice"]
    values: tuple[bool | int | float | str, ...] = Field(min_length=1)


class Grid(StrictModel):
    type: Literal["grid"]
    values: tuple[bool | int | float | str, ...] = Field(min_length=1)


Dimension = Annotated[Uniform | LogUniform | Integer | Choice | Grid, Field(discriminator="type")]


class Validation(StrictModel):
    """The fixed identities every trial is scored on (the same ones, with the same seeds, each trial)."""

    manifest: str | GeneratedManifest | None = Field(
        None, description="Parquet manifest (relative to the tune YAML) or a generator; None = the base job's")
    limit: int = Field(ge=1, description="the first N valid manifest rows")


class Objective(StrictModel):
    """Forgetting (mean ID, averaged with ID_others where measured) against damage.

    `penalised`: objective = forgetting + penalty * max(0, damage - damage_bound) / damage_bound,
    one scalar (works with ASHA and every searcher). `pareto`: every trial is kept and the Pareto
    front of forgetting vs damage is reported (optuna-nsga2 searches both at once); the objective
    column is still written so the best feasible trial can be chosen.
    """

    mode: Literal["penalised", "pareto"] = "penalised"
    damage: Literal[DAMAGE_METRICS] = Field(  # type: ignore[valid-type]
        FID_PRE.name, description="damage metric: FID_pre over the base job's fid.num_samples samples of both "
        "generators, or LPIPS_drift over its lpips_drift.num_probes fixed probe latents (cheaper; docs/tune.md)")
    damage_bound: float = Field(gt=0, description="tau: damage at or below it is feasible")
    penalty: float = Field(10.0, ge=0, description="lambda of the penalised objective")


class Searcher(StrictModel):
    kind: Literal["random", "grid", "optuna-tpe", "optuna-nsga2"] = Field(
        "random", description="random/grid: Ray Tune's BasicVariantGenerator; optuna-*: the optional extra")
    seed: int = Field(0, ge=0, description="seed of the random draws (random search, Optuna's sampler)")
    include_default: bool = Field(
        True, description="evaluate GUIDE's default value of every searched field as one trial")
    startup_trials: int | None = Field(
        None, ge=2, description="Optuna only: TPE's random trials before it models (n_startup_trials), NSGA-II's "
        "generation size (population_size); None = a third of num_samples within 2..10 (TPE) / 2..50 (NSGA-II). "
        "Optuna's own defaults (10, 50) would leave any smaller search purely random")

    def startup(self, num_samples: int) -> int:
        """The `startup_trials` an Optuna sampler gets for a search of `num_samples` trials."""
        if self.startup_trials is not None:
            return self.startup_trials
        return max(2, min(10 if self.kind == "optuna-tpe" else 50, num_samples // 3))


class Asha(StrictModel):
    kind: Literal["asha"]
    grace_period: int = Field(1, ge=1, description="reports before a trial can be stopped")
    reduction_factor: float = Field(2.0, gt=1)


class NoScheduler(StrictModel):
    kind: Literal["none"]


class TrialResources(StrictModel):
    cpus: float = Field(1.0, gt=0)
    gpus: GpuCount = Field(0.0, description="a fraction (e.g. 0.25) packs several trials on one GPU")


class TuneSpec(StrictModel):
    """A hyperparameter search over GUIDE, on a fixed validation set of identities."""

    name: str = Field(pattern=JOB_NAME_PATTERN, description="the Ray Tune experiment name")
    base_job: str | JobSpec = Field(description="job YAML (relative to the tune YAML) or the job inline")
    space: dict[str, Dimension] = Field(min_length=1, description="GuideConfig dotted field → distribution")
    validation: Validation
    objective: Objective
    searcher: Searcher = Searcher()
    scheduler: Annotated[Asha | NoScheduler, Field(discriminator="kind")] = NoScheduler(kind="none")
    resources: TrialResources = TrialResources()
    num_samples: int = Field(1, ge=1, description="trials (random/optuna; the default point counts as one) or "
                             "repeats of the grid")
    max_concurrent_trials: int = Field(1, ge=1)
    report_every_steps: int = Field(
        0, ge=0, description="also report every K unlearning steps (loss, and the running objective once an "
        "identity is done) so ASHA can stop a trial inside an identity; 0 = after each identity only")
    max_failures: int = Field(1, ge=0, description="restarts of a crashed trial (it resumes from its checkpoint)")
    output_dir: str = Field(description="tables, best_job.yaml, plot and report (relative to the tune YAML)")
    storage_path: str | None = Field(None, description="Ray Tune's experiment storage; None = OUTPUT/ray")

    @model_validator(mode="after")
    def _consistent(self) -> TuneSpec:
        for key, dim in self.space.items():
            check_dimension(key, dim)
        if self.searcher.kind == "grid":
            loose = [k for k, d in self.space.items() if not isinstance(d, Grid)]
            if loose:
                raise ValueError(f"searcher grid needs every dimension of type grid; space.{loose[0]} is not")
        if self.searcher.kind in OPTUNA_SEARCHERS and importlib.util.find_spec("optuna") is None:
            raise ValueError(f"searcher {self.searcher.kind!r} needs Optuna, the optional extra 'tune': "
                             f"{OPTIONAL_EXTRA}")
        if self.searcher.startup_trials is not None and self.searcher.kind not in OPTUNA_SEARCHERS:
            raise ValueError(f"searcher.startup_trials applies to the Optuna searchers, not {self.searcher.kind!r}")
        if self.searcher.kind in OPTUNA_SEARCHERS and any(isinstance(d, Grid) for d in self.space.values()):
            raise ValueError("Optuna searchers cannot sample grid dimensions; use choice")
        if self.objective.mode == "pareto" and isinstance(self.scheduler, Asha):
            raise ValueError("objective.mode pareto has no single metric for ASHA; use scheduler none")
        if self.searcher.kind == "optuna-nsga2" and self.objective.mode != "pareto":
            raise ValueError("searcher optuna-nsga2 is multi-objective; set objective.mode: pareto")
        if self.searcher.include_default:
            for key, dim in self.space.items():
                default = default_value(key)
                if not contains(dim, default):
                    raise ValueError(f"space.{key}: GUIDE's default {default!r} is outside the space; widen it "
                                     "or set searcher.include_default: false")
        return self


def describe(exc: ValidationError) -> str:
    """pydantic's errors, one line; whole-spec checks already name their field themselves."""
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{'.'.join(str(p) for p in err['loc'])}: {msg}" if err["loc"] else msg)
    return "; ".join(parts)


def check_dimension(key: str, dim: BaseModel) -> None:
    """`key` names a GuideConfig field and every value `dim` can produce is one GuideConfig accepts."""
    default_value(key)  # raises for a name that is not a field
    if isinstance(dim, (Uniform, LogUniform, Integer)):
        if not dim.low < dim.high:
            raise ValueError(f"space.{key}: low ({dim.low}) must be below high ({dim.high})")
        samples = (dim.low, dim.high)
    else:
        samples = dim.values
    for value in samples:
        try:
            GuideConfig.model_validate(_set(GuideConfig().model_dump(), key, value))
        except ValidationError as exc:
            raise ValueError(f"space.{key}: value {value!r} is not valid: {describe_validation_error(exc)}") from None


def default_value(key: str) -> object:
    """GUIDE's default of the dotted GuideConfig field `key`; ValueError naming it if there is none."""
    node: object = GuideConfig()
    for part in key.split("."):
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            fields = ", ".join(type(node).model_fields) if isinstance(node, BaseModel) else ""
            raise ValueError(f"space.{key}: {part!r} is not a GuideConfig field" + (f" (fields: {fields})" if fields
                                                                                    else ""))
        node = getattr(node, part)
    if isinstance(node, BaseModel):
        raise ValueError(f"space.{key}: is a section, not a field; name one of its fields")
    return node


def contains(dim: BaseModel, value: object) -> bool:
    if isinstance(dim, (Uniform, LogUniform, Integer)):
        return isinstance(value, (int, float)) and dim.low <= value <= dim.high
    return value in dim.values


def default_point(spec: TuneSpec) -> dict[str, object]:
    """GUIDE's defaults of the searched fields: the paper's configuration, as one trial."""
    return {key: default_value(key) for key in spec.space}


def _set(tree: dict, key: str, value: object) -> dict:
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return tree


def load_tune(path: Path) -> tuple[TuneSpec, JobSpec]:
    """Read a tune YAML and its base job; every relative path resolved against the YAML's folder.

    Raises ConfigError naming the file and field. Also builds the job of GUIDE's default point,
    so a space the base job's variant would refuse fails here, not in a trial.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read tune file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"tune file {path}: expected a mapping at the top level")
    base_dir = path.resolve().parent
    raw = dict(raw)
    inline = raw.get("base_job")
    if isinstance(inline, dict):
        base_job = parse_job(inline, base_dir, f"tune file {path}: base_job")
        raw["base_job"] = base_job
    for key in ("output_dir", "storage_path"):
        if isinstance(raw.get(key), str):
            raw[key] = str((base_dir / raw[key]).resolve())
    validation = raw.get("validation")
    if isinstance(validation, dict) and isinstance(validation.get("manifest"), str):
        raw["validation"] = {**validation, "manifest": str((base_dir / validation["manifest"]).resolve())}
    if isinstance(raw.get("base_job"), str):
        raw["base_job"] = str((base_dir / raw["base_job"]).resolve())
    try:
        spec = TuneSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"tune file {path}: {describe(exc)}") from exc
    base = spec.base_job if isinstance(spec.base_job, JobSpec) else load_job(Path(spec.base_job))
    try:
        probe = trial_job(spec, base, default_point(spec), Path(spec.output_dir) / "probe")
        effective_guide(probe, probe.variant, {})
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"tune file {path}: space: {exc}") from exc
    return spec, base


def guide_with(base: GuideConfig, overrides: dict[str, object]) -> dict:
    """The `guide:` mapping of a job with `overrides`: the base job's explicit settings plus the
    trial's values, nothing else, so a variant's switches apply exactly as in the base job."""
    tree = base.model_dump(mode="json", exclude_unset=True)
    for key, value in overrides.items():
        _set(tree, key, value)
    return tree


def trial_job(spec: TuneSpec, base: JobSpec, overrides: dict[str, object], output_dir: Path,
              cache_dir: Path | None = None) -> JobSpec:
    """The job one trial runs: the base job, the trial's values, the validation identities, and the
    metrics the objective needs (ID, the damage metric) added to the base job's. `cache_dir` (the
    FID statistics) is shared by the trials."""
    data = base.model_dump(mode="json", exclude_unset=True)
    data["guide"] = guide_with(base.guide, overrides)
    metrics = list(base.metrics)
    metrics += [m for m in (ID.name, spec.objective.damage) if m not in metrics]
    data["metrics"] = metrics
    if spec.validation.manifest is not None:
        v = spec.validation.manifest
        data["manifest"] = v.model_dump(mode="json") if isinstance(v, GeneratedManifest) else v
    data["limit"] = spec.validation.limit
    data["output_dir"] = str(output_dir)
    if cache_dir is not None:
        data["cache_dir"] = str(cache_dir)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def best_job(base: JobSpec, overrides: dict[str, object], name: str, output_dir: Path) -> dict:
    """The best configuration as a job mapping for `guide-ray run`: the base job (its manifest, its
    metrics) with the trial's values in `guide:`; validated before it is returned."""
    data = base.model_dump(mode="json", exclude_unset=True)
    data["guide"] = guide_with(base.guide, overrides)
    data["name"] = name
    data["output_dir"] = str(output_dir)
    JobSpec.model_validate(data)
    return data


def damage_settings(spec: TuneSpec, job: JobSpec) -> dict[str, object]:
    """Which damage metric a trial measured, over how many samples (FID) or probes (LPIPS_drift) and
    from which seed: recorded with every report, so the table says what its damage numbers mean."""
    if spec.objective.damage == LPIPS_DRIFT.name:
        count, seed = job.lpips_drift.num_probes, job.lpips_drift.seed
    else:
        count, seed = job.fid.num_samples, job.fid.seed
    return {"damage_metric": spec.objective.damage, "damage_samples": count, "damage_seed": seed}


def forgetting(metrics: dict[str, float | None]) -> float | None:
    """One identity's forgetting: ID, averaged with ID_others where it was measured."""
    values = [metrics.get(m) for m in (ID.name, ID_OTHERS.name)]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else None


def penalised(forget: float, damage: float, objective: Objective) -> float:
    """forgetting + penalty * max(0, damage - tau) / tau (lower is better)."""
    return forget + objective.penalty * max(0.0, damage - objective.damage_bound) / objective.damage_bound
