"""JobSpec edge: YAML validation, path resolution, effective per-item config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import GeneratedManifest, JobSpec, effective_guide, load_job, with_output_dir
from guide_ray.errors import ConfigError

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _job_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "jobs" / "j.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


@pytest.mark.parametrize("path", sorted(p for p in JOBS.glob("*.yaml") if not p.name.startswith("tune-")),
                         ids=lambda p: p.name)  # tune-*.yaml are search specs: tests/config/test_tune_spec.py
def test_every_shipped_job_loads(path: Path) -> None:
    job = load_job(path)
    assert Path(job.output_dir).is_absolute()


def test_quickstart_is_cpu_world_and_small() -> None:
    job = load_job(JOBS / "quickstart.yaml")
    assert job.model.backend == "world" and job.device == "cpu" and job.resources.gpus_per_actor == 0
    assert isinstance(job.manifest, GeneratedManifest) and job.manifest.n <= 5
    assert job.guide.iterations <= 100
    assert job.run_dir == (JOBS.parent / "runs" / "quickstart").resolve()


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path: Path) -> None:
    job = load_job(_job_file(tmp_path, "name: t\nmanifest: m.parquet\noutput_dir: ../out\nmodel: {weights_dir: w}\n"))
    assert job.manifest == str(tmp_path / "jobs" / "m.parquet")
    assert job.output_dir == str(tmp_path / "out")
    assert job.model.weights_dir == str(tmp_path / "jobs" / "w")
    assert job.fid_cache_dir == tmp_path / "out" / "cache"


def test_misspelt_key_names_file_and_field(tmp_path: Path) -> None:
    path = _job_file(tmp_path, "name: t\nmanifest: m.parquet\noutput_dir: o\nguide: {iteratons: 3}\n")
    with pytest.raises(ConfigError, match=r"j\.yaml: guide\.iteratons: Extra inputs are not permitted"):
        load_job(path)


def test_unknown_variant_suggests_the_close_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'guide'"):
        load_job(_job_file(tmp_path, "name: t\nmanifest: m.parquet\noutput_dir: o\nvariant: guid\n"))


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read job file"):
        load_job(_job_file(tmp_path, "name: [unclosed\n"))


@pytest.mark.parametrize("gpus", [1.5, -0.5])
def test_gpu_share_rules(gpus: float) -> None:
    with pytest.raises(ValidationError):
        JobSpec(name="t", manifest="m", output_dir="o", resources={"gpus_per_actor": gpus})


def test_fractional_and_whole_gpus_are_accepted() -> None:
    for gpus in (0.25, 0.5, 1, 2):
        assert JobSpec(name="t", manifest="m", output_dir="o", resources={"gpus_per_actor": gpus})


def test_duplicate_metrics_rejected() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        JobSpec(name="t", manifest="m", output_dir="o", metrics=["ID", "ID"])


def test_effective_guide_applies_variant_then_overrides() -> None:
    job = JobSpec(name="t", manifest="m", output_dir="o", guide={"d": 25.0, "iterations": 7})
    cfg = effective_guide(job, "baseline", {"lr": 3e-4})
    assert cfg.target == "average" and not cfg.loss_adj and not cfg.loss_global
    assert (cfg.d, cfg.iterations, cfg.lr) == (25.0, 7, 3e-4)
    with pytest.raises(ValidationError):
        effective_guide(job, "guide", {"lr": -1.0})
    with pytest.raises(ValueError, match="not a section"):
        effective_guide(job, "guide", {"d.x": 1})


def test_with_output_dir_revalidates() -> None:
    job = JobSpec(name="t", manifest="m", output_dir="o")
    assert with_output_dir(job, Path("/elsewhere")).run_dir == Path("/elsewhere")


@pytest.mark.parametrize("iterations", [0, -1])
def test_iterations_must_be_at_least_one(iterations: int) -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        JobSpec(name="t", manifest="m", output_dir="o", guide={"iterations": iterations})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        GuideConfig(iterations=iterations)


def test_a_variant_never_silently_overwrites_an_explicit_setting(tmp_path: Path) -> None:
    body = "name: j\nmanifest: m.parquet\noutput_dir: out\nvariant: guide\nguide: {target: average}\n"
    with pytest.raises(ConfigError, match=r"variant 'guide'.*guide.target: 'average'.*target='extrapolated'"):
        load_job(_job_file(tmp_path, body))
    job = load_job(_job_file(tmp_path, body.replace("variant: guide", "variant: baseline")))   # agrees: fine
    assert effective_guide(job, "baseline", {}).target == "average"
    with pytest.raises(ConfigError, match=r"variant .extrapolated\+adj.*guide.target"):     # a row's variant too
        effective_guide(job, "extrapolated+adj", {})
    implicit = load_job(_job_file(tmp_path, "name: j\nmanifest: m.parquet\noutput_dir: out\nguide: {d: 20}\n"))
    assert effective_guide(implicit, "baseline", {}).target == "average"                      # defaults are not explicit
    assert effective_guide(with_output_dir(implicit, tmp_path / "x"), "baseline", {}).target == "average"


PAPER_JOBS = ("paper-random.yaml", "paper-ffhq.yaml", "paper-celebahq.yaml", "paper-ablation.yaml")


@pytest.mark.parametrize("name", PAPER_JOBS)
def test_paper_jobs_use_the_released_codes_settings(name: str) -> None:
    job = load_job(JOBS / name)
    assert job.model.backend == "eg3d-ffhq512-128" and job.model.inversion.goae_train_mode
    assert job.guide.camera.look_at == "guide-official" and job.guide.iterations == 1000 and job.guide.lr == 1e-4
    assert job.fid.num_samples == 5000 and job.fid.seed == 0 and job.fid.extractor is None   # pytorch-fid throughout
    assert set(job.metrics) == {"ID", "ID_others", "FID_pre", "delta_FID_real"}
    assert (JOBS / name).read_text().startswith("# GUIDE's paper")                           # header says what differs
    for variant in ("baseline", "extrapolated", "extrapolated+adj", "guide"):
        effective_guide(job, variant, {})                                                   # no explicit clash


@pytest.mark.parametrize("name", ["paper-sg2-ffhq.yaml", "paper-sg2-celebahq.yaml"])
def test_sg2_paper_jobs_keep_guides_settings_on_the_2d_backend(name: str) -> None:
    """Table 6 (GUIDE-SG2): GUIDE's defaults and protocol, pSp inversion, the paper's numbers quoted."""
    from guide_ray.config.guide import GuideConfig

    job = load_job(JOBS / name)
    assert job.model.backend == "stylegan2-ffhq1024" and job.model.inversion.resolved_method(job.model.backend) == "psp"
    defaults = GuideConfig().model_dump()
    assert job.guide.model_dump() == {**defaults, "iterations": 1000, "lr": 1e-4}              # GUIDE's, unchanged
    assert defaults["d"] == 30 and defaults["alpha_max"] == 15 and defaults["n_adj"] == defaults["n_global"] == 2
    assert job.fid.num_samples == 5000 and job.fid.seed == 0 and job.fid.extractor is None
    assert set(job.metrics) == {"ID", "ID_others", "FID_pre", "delta_FID_real"}
    header = (JOBS / name).read_text()
    assert header.startswith("# GUIDE's paper, appendix A.7 / Table 6") and "face_pool" in header
    assert ("0.06 / FID_pre 6.14" in header) if "ffhq" in name.split("-")[-1] else ("0.01 / FID_pre 6.07" in header)


def test_generated_manifest_runs_each_identity_once_per_variant() -> None:
    from guide_ray.config.manifest import random_rows, with_variants

    job = load_job(JOBS / "paper-random.yaml")
    rows = with_variants(random_rows(job.manifest.n, job.manifest.seed), job.manifest.variants)
    assert len(rows) == 40 and rows[0].identity_id == "random-0000.baseline" and rows[1].variant == "guide"
    assert rows[0].seed == rows[1].seed != rows[2].seed                                     # same identity, both rows
    odd = with_variants(random_rows(1, 0), ["extrapolated+adj"])
    assert odd[0].identity_id == "random-0000.extrapolated_adj"
    with pytest.raises(ConfigError, match="listed twice"):
        with_variants(random_rows(1, 0), ["guide", "guide"])
