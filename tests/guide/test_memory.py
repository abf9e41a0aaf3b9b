"""micro_batch 'auto': the chunk size from free memory and the per-latent cost table."""

from __future__ import annotations

import pytest
import torch

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.memory import (CPU_CHUNK_GIB, HEADROOM, LATENT_COST_GIB, chunk_size, host_available_bytes,
                                    latent_cost_gib, memory_share, resolve_micro_batch)


class FakeG(torch.nn.Module):
    def __init__(self, img_resolution: int, neural_rendering_resolution: int | None = None) -> None:
        super().__init__()
        self.img_resolution = img_resolution
        if neural_rendering_resolution is not None:
            self.neural_rendering_resolution = neural_rendering_resolution


def test_cost_table_and_extrapolation():
    assert latent_cost_gib(FakeG(512, 128)) == LATENT_COST_GIB[(512, 128)] == 3.6
    assert latent_cost_gib(FakeG(128, 32)) == pytest.approx(3.6 / 16)        # by output pixels
    assert latent_cost_gib(FakeG(1024)) == pytest.approx(3.6 * 4)


def test_2d_generators_and_unknown_ones():
    decoder = torch.nn.Module()
    decoder.size = 256
    sg2 = torch.nn.Module()
    sg2.decoder = decoder
    assert latent_cost_gib(sg2) == pytest.approx(3.6 / 4)
    with pytest.raises(ValueError, match="set guide.micro_batch to a number"):
        latent_cost_gib(torch.nn.Linear(1, 1))


def test_chunk_size_fits_the_headroom_and_stays_in_range():
    assert chunk_size(5, free_gib=100.0, latent_gib=3.6) == 5
    assert chunk_size(5, free_gib=12.0, latent_gib=3.6) == int(HEADROOM * 12 / 3.6) == 2
    assert chunk_size(5, free_gib=1.0, latent_gib=3.6) == 1                   # never below one latent
    assert chunk_size(5, free_gib=100.0, latent_gib=3.6, cap_gib=8.0) == 2    # the cap binds before the memory
    assert chunk_size(5, free_gib=100.0, latent_gib=0.2, cap_gib=4.0) == 5


def test_the_cpu_host_caps_a_chunk_and_a_gpu_does_not():
    """ffhq512-128 with 20 GiB free: 4 latents would fit, but on the CPU host chunks past CPU_CHUNK_GIB
    were slower (benchmarks/RESULTS.md), so a lone CPU process takes 1 and peaks under 12 GB."""
    G = FakeG(512, 128)
    cpu = resolve_micro_batch(GuideConfig(), G, torch.device("cpu"), free_gib=20.0)
    gpu = resolve_micro_batch(GuideConfig(), G, torch.device("cuda"), free_gib=20.0)
    assert (cpu.micro_batch, cpu.cap_gib) == (int(CPU_CHUNK_GIB / 3.6), CPU_CHUNK_GIB) == (1, 4.0)
    assert (gpu.micro_batch, gpu.cap_gib) == (4, None)
    world_like = resolve_micro_batch(GuideConfig(), FakeG(128, 32), torch.device("cpu"), free_gib=20.0)
    assert world_like.micro_batch == 5                                          # 0.225 GiB per latent: one batch


def test_resolve_records_the_choice():
    G = FakeG(512, 128)
    auto = resolve_micro_batch(GuideConfig(), G, torch.device("cpu"), free_gib=12.0)
    assert (auto.micro_batch, auto.batch, auto.source) == (1, 5, "auto")
    assert auto.record() == {"micro_batch": 1, "batch": 5, "source": "auto", "free_gib": 12.0, "latent_gib": 3.6,
                             "share": 1.0, "cap_gib": CPU_CHUNK_GIB}
    gpu = resolve_micro_batch(GuideConfig(), G, torch.device("cuda"), free_gib=12.0)
    assert (gpu.micro_batch, gpu.record()["cap_gib"]) == (2, None)
    fixed = resolve_micro_batch(GuideConfig(micro_batch=8, n_adj=1), G, torch.device("cpu"))
    assert (fixed.micro_batch, fixed.batch, fixed.source, fixed.free_gib) == (4, 4, "config", None)
    measured = resolve_micro_batch(GuideConfig(), FakeG(128, 32), torch.device("cpu"))
    assert 1 <= measured.micro_batch <= 5 and measured.free_gib > 0


def test_an_actor_plans_with_its_share_of_the_device():
    """Two actors on one 24 GiB host (or a quarter GPU each) must not both plan for the whole memory."""
    G = FakeG(512, 128)
    alone = resolve_micro_batch(GuideConfig(), G, torch.device("cuda"), free_gib=20.0)
    half = resolve_micro_batch(GuideConfig(), G, torch.device("cuda"), free_gib=20.0, share=0.5)
    assert (alone.micro_batch, half.micro_batch) == (4, 2) and half.record()["share"] == 0.5
    quarter_host = resolve_micro_batch(GuideConfig(), G, torch.device("cpu"), free_gib=20.0, share=0.25)
    assert quarter_host.micro_batch == 1                                        # 0.8 × 5 GiB < 2 latents
    assert memory_share(torch.device("cpu"), 0, cpus_per_actor=1, host_cpus=2) == 0.5
    assert memory_share(torch.device("cpu"), 0, cpus_per_actor=4, host_cpus=2) == 1.0
    assert memory_share(torch.device("cuda"), 0.25, cpus_per_actor=1) == 0.25
    assert memory_share(torch.device("cuda"), 1, cpus_per_actor=1) == 1.0
    with pytest.raises(ValueError, match="share must be in"):
        resolve_micro_batch(GuideConfig(), G, torch.device("cpu"), free_gib=20.0, share=0)


def test_config_refuses_a_zero_or_unknown_micro_batch():
    for bad in (0, "max"):
        with pytest.raises(ValueError, match="micro_batch"):
            GuideConfig(micro_batch=bad)


def test_host_memory_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemAvailable:    512 kB\n")
    assert host_available_bytes(meminfo) == 512 * 1024
    meminfo.write_text("MemTotal:       1000 kB\n")
    with pytest.raises(RuntimeError, match="MemAvailable"):
        host_available_bytes(meminfo)
