"""`guide-ray bench` on the tiny preset, 1 step: every benchmark writes its JSON, Markdown and PNG.

Timings are written, never asserted (shared machines); only structure and the recorded settings are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from guide_ray.bench import step
from guide_ray.bench.report import write_outputs
from guide_ray.bench.world import build_world
from guide_ray.config.guide import GuideConfig


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "guide_ray.cli", "bench", *args], capture_output=True, text=True,
                          timeout=900)


def test_outputs_are_json_markdown_and_png(tmp_path):
    paths = write_outputs(tmp_path, "x", {"value": 1}, "| a |\n|---|\n| 1 |", lambda ax: ax.plot([0, 1], [1, 2]))
    record = json.loads(paths["json"].read_text())
    assert record["value"] == 1 and record["machine"]["torch"] and "command" in record["machine"]
    assert paths["md"].read_text().startswith("# x\n\n| a |") and "Machine:" in paths["md"].read_text()
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_options_are_guide_configs():
    assert step.option_config("bf16").speed.autocast == "bf16"
    assert step.option_config("micro_batch=1+grad_checkpoint").micro_batch == 1
    assert step.option_config("micro_batch=3").micro_batch == 3
    assert step.option_config("ours") == step.option_config("ours") and step.option_config("ours").micro_batch == "auto"
    assert step.option_config("reference-per-term") == GuideConfig()
    both = step.option_config("bf16+channels_last")
    assert (both.speed.autocast, both.speed.channels_last, both.micro_batch) == ("bf16", True, "auto")
    for bad in ("fp8", "micro_batch=0"):
        with pytest.raises(ValueError, match=f"unknown option '{bad}'"):
            step.option_config(bad)
    with pytest.raises(ValueError, match="unknown option 'fp8' in 'bf16\\+fp8'"):
        step.option_config("bf16+fp8")


def test_step_variants_see_the_same_cameras_and_latents():
    """One timed step each of ours and the reference: same draws, so (fresh G_u, same weights) the same loss."""
    world = build_world("tiny", "cpu", "standin")
    variants = step.time_variants(world, [step.REFERENCE, "ours"], steps=1, warmup=0)
    summary = step.summarize(variants)
    assert set(summary) == {"reference", "ours"} and summary["reference"]["speedup_vs_reference"] == 1.0
    assert all(len(v["times_s"]) == 1 and v["median_s"] > 0 for v in summary.values())
    assert variants[1].micro_batch == 5 and variants[0].micro_batch is None


def test_the_per_term_reference_is_the_reference_one_term_at_a_time():
    """The low-memory reference renders the same images in the same order: same loss and the same update."""
    world = build_world("tiny", "cpu", "standin")
    variants = step.time_variants(world, ["reference-per-term", step.REFERENCE], steps=1, warmup=0)
    summary = step.summarize(variants, reference="reference-per-term")
    assert summary["reference-per-term"]["speedup_vs_reference"] == 1.0 and variants[0].micro_batch is None
    assert variants[0].losses == pytest.approx(variants[1].losses, rel=1e-6) and variants[0].losses[0] > 0
    per_term, whole = (dict(v.G_u.named_parameters()) for v in variants)
    assert all(torch.allclose(per_term[k], whole[k], atol=1e-6) for k in whole)


def test_the_profile_runs_the_step_in_its_chunks():
    """The profile follows micro_batch (ffhq512-128's whole batch would not fit a 24 GiB host)."""
    world = build_world("tiny", "cpu", "standin")
    whole = step.profile_step(world)
    chunked = step.profile_step(world, cfg=GuideConfig(micro_batch=2))
    assert (whole["micro_batch"], chunked["micro_batch"]) == (5, 2)
    assert all(p["backward"] > 0 and p["renderer"] > 0 and p["total"] >= p["backward"] for p in (whole, chunked))


def test_world_preset_is_the_shipped_world_with_its_loss_networks():
    """The `world` preset times the embedded default: the shipped generator (trained weights, not a seeded
    init) and the world's loss networks; ours and the reference see the same draws there too."""
    from guide_ray.world.shipped import load_world_generator, world_source

    world = build_world("world", "cpu", "world")
    shipped = load_world_generator(world_source(None)).state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in world.G_s.state_dict().items())
    assert world.nets.identity.name == "world:idnet-id_loss" and not world.nets.perceptual.stand_in
    variants = step.time_variants(world, [step.REFERENCE, "ours"], steps=1, warmup=0)
    assert all(len(v.times) == 1 for v in variants)
    with pytest.raises(ValueError, match="unknown preset 'ffhq'; choose from ffhq512-128, tiny, world"):
        build_world("ffhq", "cpu", "standin")


@pytest.mark.slow
def test_bench_step_and_memory_commands(tmp_path):
    run = _cli("step", "--out", str(tmp_path), "--steps", "1", "--options", "ours,micro_batch=1")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "step.json").read_text())
    assert set(record["variants"]) == {"reference", "ours", "micro_batch=1"} and record["profile"]["total"] > 0
    assert {"mapping", "backbone", "renderer", "SR", "LPIPS", "ID net", "backward", "optimiser"} <= set(record["profile"])
    run = _cli("memory", "--out", str(tmp_path), "--options", "ours,micro_batch=1")
    assert run.returncode == 0, run.stderr
    rows = json.loads((tmp_path / "memory.json").read_text())["rows"]
    assert [r["micro_batch"] for r in rows] == [5, 1] and all(r["peak_rss_gib"] > 0 for r in rows)
    assert all((tmp_path / f"{n}.png").is_file() for n in ("step", "memory"))


@pytest.mark.slow
def test_bench_throughput_then_scaling(tmp_path):
    run = _cli("throughput", "--out", str(tmp_path), "--actors", "1", "--identities", "1", "--iterations", "1",
               "--num-cpus", "2")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "throughput.json").read_text())
    (one,) = record["runs"]
    assert record["pretrained_statistics_s"] > 0 and list((tmp_path / "fid-cache").rglob("*.npz"))
    assert one["ok"] == 1 and 0 <= one["engine_overhead"] < 1 and one["iterations"] == 1
    assert one["overhead_in_identities"] + one["overhead_outside"] == pytest.approx(one["engine_overhead"], abs=2e-4)
    assert one["overhead_in_identities"] > 0 and one["overhead_outside"] > 0
    assert {"source", "unlearning", "metrics", "artifacts"} == set(one["stage_s_mean"])
    run = _cli("scaling", "--out", str(tmp_path), "--gpus", "1,2", "--nodes", "1")
    assert run.returncode == 0, run.stderr
    grid = json.loads((tmp_path / "scaling.json").read_text())["grid"]
    assert [g["gpus"] for g in grid] == [1, 2]
    assert grid[1]["identities_per_hour"] == pytest.approx(2 * grid[0]["identities_per_hour"], abs=0.02)


def test_scaling_without_a_throughput_run_is_a_clear_error(tmp_path):
    run = _cli("scaling", "--out", str(tmp_path))
    assert run.returncode == 2 and "throughput.json" in run.stderr and "bench throughput" in run.stderr


def test_bench_step_profile_only(tmp_path):
    """--profile-only times no variants (ffhq512-128's would take half an hour) and still writes all three files."""
    run = _cli("step", "--out", str(tmp_path), "--profile-only", "--options", "ours,reference-per-term")
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "step.json").read_text())
    assert record["variants"] == {} and record["profile"]["micro_batch"] == 5 and record["profile"]["renderer"] > 0
    assert (tmp_path / "step.md").read_text().startswith("# step\n\nPer-stage profile") and (tmp_path / "step.png").is_file()
    refused = _cli("step", "--out", str(tmp_path / "none"), "--profile-only", "--no-profile")
    assert refused.returncode != 0 and "leave nothing to run" in refused.stderr
