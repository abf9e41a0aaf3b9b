"""How many identities one device runs at once, and the total throughput: k worker processes on the
same device (what k fractional-GPU Ray actors amount to), each timing `steps` steps of our default
step after one warm-up. Minutes/identity and identities/hour are extrapolated to `iterations` steps
(unlearning only: inversion, metrics and artifacts are measured by `bench throughput`).

`python -m guide_ray.bench.concurrent PRESET DEVICE NETS STEPS` is one worker; it waits for a start
file so the k workers' timed steps overlap, and prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(preset: str, device: str, nets: str, steps: int, start_file: str) -> dict[str, object]:
    import torch

    from guide_ray.bench.step import make_variant
    from guide_ray.bench.world import build_world

    world = build_world(preset, device, nets)
    variant = make_variant(world, "ours")
    variant.run(torch.Generator(world.device).manual_seed(0))          # warm-up
    Path(f"{start_file}.ready-{os.getpid()}").touch()
    while not Path(start_file).exists():
        time.sleep(0.05)
    times = []
    for i in range(steps):
        if world.device.type == "cuda":
            torch.cuda.synchronize(world.device)
        t = time.perf_counter()
        variant.run(torch.Generator(world.device).manual_seed(i + 1))
        if world.device.type == "cuda":
            torch.cuda.synchronize(world.device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(world.device) / 2 ** 30 if world.device.type == "cuda" else None
    return {"median_s": statistics.median(times), "cuda_peak_gib": peak}


def run_k(k: int, preset: str, device: str, nets: str, steps: int, workdir: Path, iterations: int = 1000,
          timeout_s: float = 1800) -> dict[str, object]:
    """Start k workers together; → per-worker median s/step, min/identity and identities/hour in total."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = workdir / f"start-{k}"
    cmd = [sys.executable, "-m", "guide_ray.bench.concurrent", preset, device, nets, str(steps), str(start)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(k)]
    deadline = time.monotonic() + timeout_s
    while len(list(workdir.glob(f"start-{k}.ready-*"))) < k and all(p.poll() is None for p in procs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    start.touch()
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        outs.append(json.loads(lines[-1]) if p.returncode == 0 and lines else {"error": err.strip()[-300:]})
    ok = [o for o in outs if "median_s" in o]
    if len(ok) < k:
        return {"k": k, "ok": len(ok), "errors": [o.get("error") for o in outs if "error" in o]}
    step_s = statistics.median(o["median_s"] for o in ok)
    return {"k": k, "ok": k, "median_s_per_step": round(step_s, 4),
            "min_per_identity": round(step_s * iterations / 60, 2),
            "identities_per_hour": round(k * 3600 / (step_s * iterations), 2),
            "cuda_peak_gib_per_worker": max((o["cuda_peak_gib"] or 0) for o in ok) or None}


if __name__ == "__main__":
    preset, device, nets, steps, start_file = sys.argv[1:6]
    print(json.dumps(worker(preset, device, nets, int(steps), start_file)))
