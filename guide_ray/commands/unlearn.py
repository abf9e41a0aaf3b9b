"""`guide-ray unlearn`: unlearn one Random identity with the pure-PyTorch core (no Ray).

w_u = mapping(z) with z drawn from --seed; writes the unlearned synthesis weights, source /
target / unlearned renders, the loss curve and a metrics JSON with the full config and seeds.
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
    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("--backend", "--preset", dest="backend", default="tiny", choices=["tiny", "eg3d-ffhq512-128"],
                   help="'tiny' = embedded untrained stand-in world (CPU); 'eg3d-ffhq512-128' = released EG3D")
    p.add_argument("--seed", type=int, default=0, help="identity seed (z of w_u) and every random draw of the run")
    p.add_argument("--iterations", type=int, help="unlearning steps (default: the variant's, 1000)")
    p.add_argument("--variant", default="guide", help="baseline | extrapolated | extrapolated+adj | guide | ...")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="GuideConfig override with a dotted key, e.g. --set d=20 --set camera.look_at=guide-official")
    p.add_argument("--out", required=True, type=Path, help="output folder (created; existing results are refused)")
    p.add_argument("--weights", help="weights directory (default $GUIDE_RAY_WEIGHTS or ./weights)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
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

    from guide_ray.config.guide import GuideConfig, apply_overrides
    from guide_ray.config.base import describe_validation_error
    from guide_ray.guide.variants import apply_variant

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


def main(args: argparse.Namespace) -> int:
    check_out(args.out)
    cfg = build_config(args)                      # validated before any torch import
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if (args.out / "metrics.json").exists():
        raise ConfigError(f"{args.out} already holds a finished run (metrics.json); choose another --out")
    from guide_ray.models import weights as W
    weights_dir = W.resolve_weights_dir(args.weights)
    W.require_backend_files(args.backend, weights_dir, metrics=["ID"])
    try:
        return _run(args, cfg, weights_dir)
    except FloatingPointError as exc:  # guide.loop stops at the first non-finite loss
        raise GuideRayError(f"unlearning diverged: {exc}; nothing was saved. Lower the learning rate "
                            "(--set lr=...) or check the --set overrides") from None


def _run(args: argparse.Namespace, cfg, weights_dir: Path) -> int:
    import torch
    from tqdm import tqdm

    from guide_ray import __version__
    from guide_ray.metrics.identity import id_similarity
    from guide_ray.models.nets.factory import build_id_metric, build_loss_nets
    from guide_ray.pipeline import load_generator, random_source_latent, unlearn_with_progress, write_artifacts, write_json
    from guide_ray.utils.seeding import derive_seed

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but CUDA is not available on this machine")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    G_s = load_generator(args.backend, weights_dir, device)
    nets = build_loss_nets(args.backend, weights_dir, device)
    id_metric = build_id_metric(args.backend, weights_dir, device)
    w_u = random_source_latent(G_s, args.seed)
    bar = tqdm(total=cfg.iterations, desc="unlearning", unit="step")

    def progress(step, parts) -> bool:
        bar.update(1)
        bar.set_postfix(loss=f"{parts.total:.4f}", local=f"{parts.local:.4f}")
        return False

    try:
        G_u, result = unlearn_with_progress(G_s, w_u, cfg, nets, args.seed, on_step=progress)
    finally:
        bar.close()  # before any error message, so it gets a line of its own
    id_sim = id_similarity(G_s, G_u, w_u, id_metric, cfg.camera)
    artifacts = write_artifacts(args.out, G_s, G_u, result, cfg.camera)
    stand_ins = {n.name: n.stand_in for n in (nets.perceptual, nets.identity, id_metric)}
    payload = {
        "identity": {"scenario": "random", "seed": args.seed},
        "metrics": {"ID": id_sim, "ID_views": 11},
        "losses": {"first": result.losses[0].total if result.losses else None,
                   "last": result.losses[-1].total if result.losses else None},
        "iterations": result.steps, "seconds": round(result.seconds, 2), "device": str(device),
        "backend": args.backend, "variant": args.variant, "config": cfg.model_dump(mode="json"),
        "seeds": {"seed": args.seed, "source": derive_seed(args.seed, "source"),
                  "unlearn": derive_seed(args.seed, "unlearn")},
        "networks": stand_ins, "stand_in": args.backend == "tiny" or any(stand_ins.values()),
        "artifacts": artifacts, "version": __version__,
    }
    write_json(args.out / "metrics.json", payload)
    label = " (STAND-IN networks: numbers are not comparable with the paper)" if payload["stand_in"] else ""
    print(f"ID similarity before/after: {id_sim:.4f}{label}\nwrote {args.out}")
    return 0
