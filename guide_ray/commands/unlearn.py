"""`guide-ray unlearn`: unlearn one Random identity with the pure-PyTorch core (no Ray).

w_u = mapping(z) with z drawn from --seed. The identity runs as one WorkItem through the same
`Pipeline.run` as a batch worker, so OUT/artifacts/<identity_id>/ holds exactly what a batch run
writes: the unlearned synthesis weights, source / target / unlearned renders, the loss curve and
metrics.json with the full config and seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from guide_ray.errors import ConfigError, GuideRayError

log = logging.getLogger(__name__)


def add_parser(sub, name: str, help_text: str) -> None:
    from guide_ray.config.backends import BACKEND_NAMES

    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("--backend", "--preset", dest="backend", default="world", choices=BACKEND_NAMES,
                   help="'world' (default) = the synthetic face world shipped with guide_ray (docs/world.md); "
                   "'tiny' = embedded untrained EG3D with stand-in networks (CPU); 'eg3d-ffhq512-128' = released EG3D; "
                   "'stylegan2-tiny' / 'stylegan2-ffhq1024' = GUIDE-SG2 (StyleGAN2 + pSp); see "
                   "guide_ray/config/backends.py")
    p.add_argument("--seed", type=int, default=0, help="identity seed (z of w_u) and every random draw of the run")
    p.add_argument("--iterations", type=int, help="unlearning steps (default: the variant's, 1000)")
    p.add_argument("--variant", default="guide", help="baseline | extrapolated | extrapolated+adj | guide | ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="GuideConfig override with a dotted key, e.g. --set d=20 --set camera.look_at=guide-official")
    p.add_argument("--out", required=True, type=Path, help="output folder (created; existing results are refused)")
    p.add_argument("--weights", help="weights directory (default $GUIDE_RAY_WEIGHTS or ./weights)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                   help="metrics to compute (default: ID); see guide_ray/config/metrics.py")
    p.set_defaults(handler=main)


def parse_overrides(items: list[str]) -> dict[str, object]:
    """KEY=VALUE pairs; values are JSON when they parse as JSON ("20", "[0,0,0]", "true"), else strings."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_config(args: argparse.Namespace):
    from pydantic import ValidationError

    from guide_ray.config.base import describe_validation_error
    from guide_ray.config.guide import GuideConfig, apply_overrides
    from guide_ray.config.variants import apply_variant

    overrides = parse_overrides(args.overrides)
    if args.iterations is not None:
        overrides["iterations"] = args.iterations
    try:
        return apply_overrides(apply_variant(GuideConfig(), args.variant), overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid unlearning config: {describe_validation_error(exc)}") from None
    except ValueError as exc:
        raise ConfigError(f"invalid unlearning config: {exc}") from None


def check_out(out: Path) -> None:
    """--out must be a folder this process can write: checked (by creating it and writing a probe
    file) before any computing, so an hour of unlearning never ends in a failed save."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is an existing file, not a folder; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out} is not a writable folder: {exc.strerror or exc}") from None


def build_job(args: argparse.Namespace, cfg):
    """The one-identity job: backend, weights, metrics and config of the command line."""
    from pydantic import ValidationError

    from guide_ray.config.base import describe_validation_error
    from guide_ray.config.job import JobSpec
    from guide_ray.config.metrics import ID

    spec = {"name": "unlearn", "manifest": {"generate": "random", "n": 1, "seed": args.seed},
            "model": {"backend": args.backend, "weights_dir": args.weights}, "variant": args.variant,
            "guide": cfg.model_dump(), "metrics": args.metrics or [ID.name], "output_dir": str(args.out),
            "device": args.device}
    try:
        return JobSpec.model_validate(spec)
    except ValidationError as exc:
        raise ConfigError(f"invalid unlearn options: {describe_validation_error(exc)}") from None


def identity_id(seed: int) -> str:
    return f"random-seed{seed}"


def main(args: argparse.Namespace) -> int:
    cfg = build_config(args)                      # validated before any torch import
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    from guide_ray.store.artifacts import artifact_dir

    finished = artifact_dir(args.out, identity_id(args.seed)) / "metrics.json"
    if finished.exists():
        raise ConfigError(f"{args.out} already holds a finished run ({finished}); choose another --out")
    job = build_job(args, cfg)
    check_out(args.out)
    from guide_ray.models import weights as weight_registry
    weight_registry.require_backend_files(args.backend, weight_registry.resolve_weights_dir(args.weights),
                                          metrics=job.metrics)
    try:
        return _run(job, args.seed)
    except FloatingPointError as exc:  # guide.loop stops at the first non-finite loss
        raise GuideRayError(f"unlearning diverged: {exc}; nothing was saved. Lower the learning rate "
                            "(--set lr=...) or check the --set overrides") from None


def _run(job, seed: int) -> int:
    """One WorkItem through the batch pipeline (guide_ray.pipeline.Pipeline.run), with a progress bar."""
    from tqdm import tqdm

    from guide_ray import __version__
    from guide_ray.config.job import WorkItem
    from guide_ray.config.manifest import ManifestRow
    from guide_ray.config.metrics import BY_NAME
    from guide_ray.pipeline import Pipeline
    from guide_ray.store.artifacts import artifact_dir
    from guide_ray.store.runkey import item_run_key, job_key
    from guide_ray.utils.device import pick_device

    row = ManifestRow(identity_id=identity_id(seed), scenario="random", seed=seed)
    run_key = item_run_key(job_key(job, f"{job.model.backend}:unlearn-cli", __version__), row, job.variant,
                           job.guide)
    item = WorkItem(identity_id=row.identity_id, scenario="random", backend=job.model.backend, source="", seed=seed,
                    variant=job.variant,
                    guide=job.guide, run_key=run_key)
    pipeline = Pipeline(job, pick_device(job.device))
    out_dir = artifact_dir(job.run_dir, item.identity_id)
    bar = tqdm(total=job.guide.iterations, desc="unlearning", unit="step")

    def progress(step, parts) -> bool:
        bar.update(1)
        bar.set_postfix(loss=f"{parts.total:.4f}", local=f"{parts.local:.4f}")
        return False

    try:
        outcome = pipeline.run(item, out_dir, on_step=progress)
    finally:
        bar.close()  # before any error message, so it gets a line of its own
    label = " (STAND-IN networks: numbers are not comparable with the paper)" if outcome.stand_in else ""
    for name in job.metrics:
        value = outcome.metrics.get(name)
        print(f"{name}: {'–' if value is None else f'{value:.{BY_NAME[name].decimals}f}'}{label}")
    if outcome.id_views_unaligned:
        print(f"{outcome.id_views_unaligned} ID render(s) had no detectable face (ID-loss crop used)")
    print(f"wrote {out_dir}")
    return 0
