"""Batched GUIDE step vs the official per-latent order, on the same machine in one run.

The official loop renders each of the 1 + N_a + N_g latents separately (plus separate plane
passes); guide_ray renders them as one batch per generator. This reports seconds per step of
both and their ratio, so the claim is measured, not asserted. Ratios are the number to read:
absolute times on shared CPUs are noisy.

    python benchmarks/bench_step.py [--steps 5] [--device cpu|cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "guide"))
from reference_loop import reference_loss  # noqa: E402  (the test-suite's oracle of the official order)

from guide_ray.config.guide import GuideConfig  # noqa: E402
from guide_ray.guide.loop import trainable_parameters  # noqa: E402
from guide_ray.guide.losses import guide_losses  # noqa: E402
from guide_ray.guide.sampling import sample_step_latents, step_camera  # noqa: E402
from guide_ray.guide.targets import ufo_target  # noqa: E402
from guide_ray.models.eg3d.camera import frontal_camera  # noqa: E402
from guide_ray.models.eg3d.presets import build_generator  # noqa: E402
from guide_ray.models.nets.base import LossNets  # noqa: E402
from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = GuideConfig()
    G_s = build_generator("tiny").to(device)
    G_u = copy.deepcopy(G_s)
    params = trainable_parameters(G_u)
    G_u.train()
    nets = LossNets(StandInPerceptual().to(device), StandInIdentity().to(device))
    rng = torch.Generator(device).manual_seed(0)
    c_front = frontal_camera(1, device=device)
    w_u = G_s.mapping(torch.randn(1, G_s.z_dim, generator=rng, device=device), c_front)
    w_t = ufo_target(w_u, G_s.backbone.mapping.w_avg, cfg.d)

    def batched() -> None:
        c = step_camera(cfg.camera, rng, device)
        latents = sample_step_latents(cfg, w_u, w_t, G_s, c_front, rng)
        loss, _ = guide_losses(G_u, G_s, latents, c, cfg, nets, rng)
        torch.autograd.grad(loss, params)

    def per_latent() -> None:
        c = step_camera(cfg.camera, rng, device)
        latents = sample_step_latents(cfg, w_u, w_t, G_s, c_front, rng)
        deltas = latents.w_src[1:1 + cfg.n_adj] - w_u
        w_globals = latents.w_src[1 + cfg.n_adj:]
        loss = reference_loss(G_u, G_s, w_u, w_t, deltas, w_globals, c, cfg, nets)
        torch.autograd.grad(loss, params)

    results = {}
    for name, fn in (("batched", batched), ("per_latent", per_latent)):
        fn()  # warm-up
        times = []
        for _ in range(args.steps):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        results[name] = statistics.median(times)
    report = {"device": str(device), "threads": args.threads, "steps": args.steps, "batch": cfg.batch_size,
              "s_per_step": {k: round(v, 3) for k, v in results.items()},
              "speedup_batched": round(results["per_latent"] / results["batched"], 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
