"""Peak memory of one step per option, each in its own process (a process's peak RSS only grows,
and the issue's two-in-one-process run was OOM-killed).

`python -m guide_ray.bench.memory PRESET OPTION DEVICE NETS` builds the world, records the
resident set after building, runs one step (or the reference step) and prints one JSON line:
peak host RSS (getrusage; the process's whole life, so building is included), the RSS before the
step and, on CUDA, torch.cuda.max_memory_allocated of the step. `measure` runs it per option.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

GIB = 2 ** 30


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def probe(preset: str, option: str, device: str, nets: str) -> dict[str, object]:
    """Run one step of `option` here and measure it (this process should do nothing else)."""
    import torch

    from guide_ray.bench.step import make_variant
    from guide_ray.bench.world import build_world

    world = build_world(preset, device, nets)
    variant = make_variant(world, option)
    if world.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(world.device)
    before = _rss_now()
    start = time.perf_counter()
    variant.run(torch.Generator(world.device).manual_seed(0))
    seconds = time.perf_counter() - start
    cuda_peak = torch.cuda.max_memory_allocated(world.device) / GIB if world.device.type == "cuda" else None
    variant.stack.close()
    micro = variant.micro_batch
    return {"preset": preset, "option": option, "device": device, "nets": nets, "seconds": round(seconds, 3),
            "rss_before_step_gib": round(before / GIB, 3),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3),
            "cuda_peak_gib": None if cuda_peak is None else round(cuda_peak, 3), "micro_batch": micro}


def measure(preset: str, options: list[str], device: str, nets: str, timeout_s: float = 3600) -> list[dict]:
    """One fresh interpreter per option; a crashed or OOM-killed probe is a row with its error."""
    rows = []
    for option in options:
        cmd = [sys.executable, "-m", "guide_ray.bench.memory", preset, option, device, nets]
        try:
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rows.append({"option": option, "error": f"timed out after {timeout_s:.0f} s"})
            continue
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            reason = "killed (out of memory?)" if done.returncode in (-9, 137) else done.stderr.strip()[-400:]
            rows.append({"option": option, "error": f"exit {done.returncode}: {reason}"})
            continue
        rows.append(json.loads(lines[-1]))
    return rows


if __name__ == "__main__":
    print(json.dumps(probe(*sys.argv[1:5])))
