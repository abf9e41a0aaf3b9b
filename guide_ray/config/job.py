"""JobSpec (the job YAML under jobs/) and WorkItem (one identity as shipped to a worker).

`load_job` is the edge: YAML → validated, frozen JobSpec with every relative path resolved
against the YAML's folder, so the spec means the same thing from any working directory.
WorkItem is small and picklable; it carries the *effective* GuideConfig (job config → variant →
row overrides, each step re-validated) so a worker never re-derives configuration.
No torch, no ray.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from guide_ray.config.backends import BACKEND_NAMES, INVERSION_METHODS, backend_info
from guide_ray.config.base import GpuCount, StrictModel, describe_validation_error
from guide_ray.config.guide import GuideConfig, apply_overrides
from guide_ray.config.manifest import ManifestRow, Scenario, resolve_media
from guide_ray.config.metrics import DEFAULT_METRICS, METRIC_NAMES, METRICS
from guide_ray.config.variants import apply_variant
from guide_ray.config.verify import VerifySpec
from guide_ray.errors import ConfigError

Metric = Literal[METRIC_NAMES]  # type: ignore[valid-type]  # the registry's names, validated by pydantic
FID_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if "samples" in m.needs)
PROBE_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if "probes" in m.needs)
FidExtractor = Literal["pytorch-fid", "clean-fid"]
Backend = Literal[BACKEND_NAMES]  # type: ignore[valid-type]  # guide_ray.config.backends
InversionMethod = Literal[INVERSION_METHODS]  # type: ignore[valid-type]
JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class InversionSpec(StrictModel):
    """How a photo becomes w_u. Chosen explicitly per backend; nothing falls back silently."""

    method: InversionMethod | None = Field(
        None, description="None = the backend's default (guide_ray.config.backends): 'goae' on eg3d-ffhq512-128 "
        "(needs encoder_FFHQ.pt), 'projection' on tiny (no encoder exists for the stand-in world), 'psp' on the "
        "StyleGAN2 backends")
    goae_train_mode: bool = Field(
        False, description="invert with the encoder in train mode (DropPath/dropout on, seeded), as GUIDE's code does")
    projection_steps: int = Field(200, ge=1, description="Adam steps of the optimisation-based W+ projection")
    projection_lr: float = Field(0.01, gt=0, description="learning rate of the projection")

    def resolved_method(self, backend: str) -> str:
        return self.method if self.method is not None else backend_info(backend).default_inversion


class ModelSpec(StrictModel):
    """Which generator (and matching encoder / metric networks) the workers load."""

    backend: Backend = Field(
        "world", description="generator backend (guide_ray.config.backends): 'world' = the synthetic face world "
        "shipped with guide_ray, the embedded default (docs/world.md); 'tiny' = untrained CPU-sized EG3D with "
        "stand-in networks (fastest, for wiring tests); 'eg3d-ffhq512-128' = the released EG3D; 'stylegan2-tiny' / "
        "'stylegan2-ffhq1024' = GUIDE-SG2's 2D StyleGAN2 + pSp"
    )
    weights_dir: str | None = Field(
        None, description="folder of pretrained files (relative to the YAML); None = $GUIDE_RAY_WEIGHTS or ./weights"
    )
    inversion: InversionSpec = InversionSpec()

    @model_validator(mode="after")
    def _inversion_fits_the_backend(self) -> ModelSpec:
        methods = backend_info(self.backend).inverters
        if self.inversion.method is not None and self.inversion.method not in methods:
            why = " (GOAE was trained for EG3D FFHQ)" if self.inversion.method == "goae" else ""
            raise ValueError(f"inversion.method {self.inversion.method!r} does not apply to backend "
                             f"{self.backend!r}{why}; it inverts photos with {', '.join(map(repr, methods))}")
        return self


class GeneratedManifest(StrictModel):
    """A manifest the run creates itself (written to RUN/manifest.parquet), e.g. for the quickstart."""

    generate: Literal["random", "world_in_domain", "world_ood"] = Field(
        description="'random': ids random-0000…, seeds from `seed`; 'world_in_domain' / 'world_ood': `photos` "
        "renderer photos of each of n synthetic-world identities, written to RUN/photos/ (backend 'world')")
    n: int = Field(ge=1, le=100_000, description="number of identities")
    photos: int = Field(3, ge=1, le=100, description="world scenarios: photos per identity (the source + ID_others)")
    seed: int = Field(0, ge=0, description="manifest seed; per-row seeds are derived from it")
    variants: tuple[str, ...] = Field(
        (), description="run every identity once per variant (ids random-0000.<variant>); () = the job's variant")


class FidSpec(StrictModel):
    """Settings of FID_pre / ΔFID_real (GUIDE's evaluate_fid.py: 5000 samples, batch 50, seed 0).

    Every FID compares features from one extractor: ΔFID_real uses the extractor that produced the
    real statistics (recorded with them); FID_pre uses `extractor`, by default the same one, so a
    table uses one extractor throughout.
    """

    num_samples: int = Field(5000, ge=2, description="generated images per FID set")
    seed: int = Field(0, ge=0, description="seed of the sampled latents and cameras")
    batch_size: int = Field(50, ge=1, description="render batch")
    real_stats: str | None = Field(
        None, description="real-image statistics from `guide-ray fid-stats` (relative to the YAML); None = GUIDE's "
        "ffhq_real_feat.npy from the weights folder (pytorch-fid features)")
    extractor: FidExtractor | None = Field(
        None, description="Inception port of FID_pre: 'pytorch-fid' (GUIDE's) or 'clean-fid'; None = the real "
        "statistics' extractor")


class DriftSpec(StrictModel):
    """The probe set of LPIPS_drift: the same seeded latents and views rendered by G_s and by G_u.

    Both generators draw the same backbone noise, so the metric is 0 for an unchanged generator and
    measures only what unlearning changed; far fewer renders than FID needs to be meaningful.
    """

    num_probes: int = Field(32, ge=1, description="probe latents (z and yaw, drawn like FID samples)")
    seed: int = Field(0, ge=0, description="seed of the probe latents, cameras and noise")
    batch_size: int = Field(8, ge=1, description="render batch (noise draws depend on it)")


class Resources(StrictModel):
    """Ray resources of one worker actor."""

    gpus_per_actor: GpuCount = Field(
        0.0, description="GPUs per actor; a fraction (e.g. 0.5) lets several identities share one GPU"
    )
    cpus_per_actor: float = Field(1.0, gt=0, description="logical CPUs per actor (decode, pre-processing)")


class JobSpec(StrictModel):
    """A batch job: which identities, which model and config, what to measure, where to write."""

    name: str = Field(pattern=JOB_NAME_PATTERN, description="job name; used in actor and submission names")
    manifest: str | GeneratedManifest = Field(description="Parquet manifest path (relative to the YAML) or a generator")
    model: ModelSpec = ModelSpec()
    variant: str = Field("guide", description="default GUIDE variant (guide_ray.config.variants); rows may override")
    guide: GuideConfig = Field(GuideConfig(), description="base hyperparameters before variant and row overrides")
    metrics: tuple[Metric, ...] = Field(DEFAULT_METRICS, description="metrics computed per identity "
                                        "(guide_ray.config.metrics)")
    fid: FidSpec = FidSpec()
    lpips_drift: DriftSpec = DriftSpec()
    output_dir: str = Field(description="the run folder RUN (relative to the YAML); results, artifacts, tables")
    cache_dir: str | None = Field(None, description="pretrained FID statistics cache; default RUN/cache")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' = cuda when the actor got a GPU")
    resources: Resources = Resources()
    num_actors: int | None = Field(None, ge=1, description="None = as many as the cluster's GPUs (or CPUs) fit")
    max_attempts: int = Field(2, ge=1, description="attempts per identity before it is recorded as failed")
    limit: int | None = Field(None, ge=1, description="process only the first N valid manifest rows")
    prefetch: int = Field(0, ge=0, le=4, description="extra items queued on each actor beyond the running one")
    item_timeout_s: float | None = Field(None, gt=0, description="kill and retry an identity running longer")
    verify: VerifySpec | None = Field(
        None, description="run `guide-ray verify` (attack suite + collateral map, docs/verify.md) after unlearning, "
        "with these settings; None = only on demand")

    @field_validator("metrics")
    @classmethod
    def _unique_metrics(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"metrics listed twice: {list(v)}")
        return v

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    @property
    def fid_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else self.run_dir / "cache"


class WorkItem(StrictModel):
    """One identity as a worker sees it: resolved paths, effective config, its run_key."""

    identity_id: str
    scenario: Scenario
    backend: Backend = Field(description="the job's generator backend, recorded with the result")
    source: str = Field(description="absolute path or URI; '' for random")
    other_images: tuple[str, ...] = ()
    seed: int
    variant: str
    guide: GuideConfig = Field(description="effective config: job.guide → variant → row overrides")
    run_key: str


def load_job(path: Path) -> JobSpec:
    """Read and validate a job YAML; relative paths become absolute (against the YAML's folder).

    Raises ConfigError naming the file and the offending field.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read job file {path}: {exc}") from exc
    return parse_job(raw, path.resolve().parent, f"job file {path}")


def parse_job(raw: object, base: Path, source: str) -> JobSpec:
    """Validate a job mapping whose relative paths are relative to `base`; errors start with `source`.

    `load_job` reads a YAML with it; a tune spec's inline base job uses it with the spec's folder.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    raw = dict(raw)
    for key in ("manifest", "output_dir", "cache_dir"):
        if isinstance(raw.get(key), str):
            raw[key] = str((base / raw[key]).resolve())
    if isinstance(raw.get("fid"), dict) and isinstance(raw["fid"].get("real_stats"), str):
        raw["fid"] = {**raw["fid"], "real_stats": str((base / raw["fid"]["real_stats"]).resolve())}
    if isinstance(raw.get("model"), dict) and isinstance(raw["model"].get("weights_dir"), str):
        raw["model"] = {**raw["model"], "weights_dir": str((base / raw["model"]["weights_dir"]).resolve())}
    try:
        job = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_validation_error(exc)}") from exc
    try:
        effective_guide(job, job.variant, {})  # an unknown job-level variant fails at load time
    except ConfigError as exc:
        raise ConfigError(f"{source}: variant: {exc}") from exc
    return job


def effective_guide(job: JobSpec, variant: str, overrides: dict[str, object]) -> GuideConfig:
    """job.guide with `variant`'s switches, then dotted `overrides`; every step re-validated.

    Raises ConfigError (unknown variant, with a did-you-mean; or a variant that would overwrite
    a setting the job sets explicitly) or ValueError/ValidationError (bad override key or value),
    which the caller turns into a row error.
    """
    cfg = apply_variant(job.guide, variant)
    return apply_overrides(cfg, overrides) if overrides else cfg


def make_work_item(
    job: JobSpec, row: ManifestRow, manifest_dir: Path, *, run_key: str, guide: GuideConfig
) -> WorkItem:
    """The WorkItem of `row`: paths resolved against the manifest's folder."""
    return WorkItem(
        identity_id=row.identity_id,
        scenario=row.scenario,
        backend=job.model.backend,
        source=resolve_media(row.source, manifest_dir),
        other_images=tuple(resolve_media(p, manifest_dir) for p in row.other_images),
        seed=row.seed,
        variant=row.variant or job.variant,
        guide=guide,
        run_key=run_key,
    )


def with_output_dir(job: JobSpec, output_dir: Path) -> JobSpec:
    """`job` writing to another run folder (re-validated). The folder is not part of any run_key."""
    return JobSpec.model_validate({**job.model_dump(exclude_unset=True), "output_dir": str(output_dir)})


def reference_markdown() -> str:
    """The job-spec reference table of docs/engine.md, generated from JobSpec's JSON schema.

    Nested sections (model, fid, resources) are expanded as dotted keys; GuideConfig is
    referenced, not expanded (it has its own documentation in guide_ray/config/guide.py).
    """
    schema = JobSpec.model_json_schema()
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    _reference_rows(schema, schema, "", lines)
    return "\n".join(lines) + "\n"


def _reference_rows(schema: dict, node: dict, prefix: str, lines: list[str]) -> None:
    required = set(node.get("required", []))
    for name, prop in node["properties"].items():
        ref = prop.get("$ref", "").rsplit("/", 1)[-1]
        if ref and ref != "GuideConfig":
            _reference_rows(schema, schema["$defs"][ref], f"{prefix}{name}.", lines)
            continue
        if name in required:
            default = "required"
        elif ref == "GuideConfig":
            default = "the official defaults"
        else:
            default = f"`{json.dumps(prop.get('default'))}`"
        desc = prop.get("description", "").replace("|", "\\|")
        lines.append(f"| `{prefix}{name}` | {_type_name(prop)} | {default} | {desc} |")


def _type_name(prop: dict) -> str:
    if "anyOf" in prop:
        return " \\| ".join(_type_name(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "enum" in prop or "const" in prop:
        return " \\| ".join(f"`{v}`" for v in prop.get("enum", [prop.get("const")]))
    if prop.get("type") == "array":
        return f"list of {_type_name(prop['items'])}"
    return prop.get("type", "any")
