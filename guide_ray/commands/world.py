"""`guide-ray world train --out DIR`: train the synthetic world's networks (resumable);
`guide-ray world sample --out PNG [--generator PT]`: a grid of identities (rows) × yaws (columns)
from the renderer, each row followed by the trained generator's row when --generator is given;
`guide-ray world evaluate --out DIR`: the shipped world's measured quality (docs/world.md).

Rerunning `train` with the same DIR resumes from the last checkpoint and skips finished stages."""

from __future__ import annotations

import argparse
from pathlib import Path


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=__doc__)
    actions = p.add_subparsers(dest="world_command", required=True, metavar="ACTION")
    train = actions.add_parser("train", help="train every world network from fixed seeds (resumable)")
    train.add_argument("--out", type=Path, required=True, help="output folder (checkpoints, weights, manifest)")
    train.add_argument("--max-steps", type=_positive,
                       help="stop after this many steps in this sitting (rerun to continue)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=main)
    sample = actions.add_parser("sample", help="write a PNG grid of identities × yaws from the renderer")
    sample.add_argument("--out", type=Path, required=True, help="PNG file to write")
    sample.add_argument("--identities", type=_positive, default=6, help="rows (default 6)")
    sample.add_argument("--seed", type=int, default=0, help="identity seed (default 0)")
    sample.add_argument("--domain", choices=("in_domain", "ood"), default="in_domain",
                        help="population to draw from (default in_domain)")
    sample.add_argument("--resolution", type=_positive, default=128, help="tile size in pixels (default 128)")
    sample.add_argument("--generator", type=Path, metavar="PT",
                        help="a trained world generator.pt: each renderer row is followed by its row")
    sample.set_defaults(handler=main)
    evaluate = actions.add_parser("evaluate", help="measure the shipped world: identity TAR, generator fidelity, "
                                  "inversion (JSON + Markdown + PNG)")
    evaluate.add_argument("--out", type=Path, required=True, help="output folder")
    evaluate.add_argument("--weights", help="weights folder holding the trained world in world/ (default "
                          "$GUIDE_RAY_WEIGHTS or ./weights; else the world shipped with guide_ray)")
    evaluate.add_argument("--identities", type=_positive, default=200, help="held-out identities for TAR (default 200)")
    evaluate.add_argument("--latents", type=_positive, default=50, help="latents for generator fidelity (default 50)")
    evaluate.add_argument("--inversions", type=int, default=6, help="photos to invert (0 = skip; default 6)")
    evaluate.add_argument("--inversion-steps", type=_positive, default=200, help="projection steps (default 200)")
    evaluate.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from guide_ray.errors import ConfigError

    if args.world_command == "evaluate":
        from guide_ray.models.weights import resolve_weights_dir
        from guide_ray.world.quality import write_report
        from guide_ray.world.shipped import world_source

        write_report(world_source(resolve_weights_dir(args.weights)), args.out, args.identities, args.latents, args.inversions, args.inversion_steps)
        print((args.out / "world_quality.md").read_text(), end="")
        return 0
    if args.world_command == "sample":
        if args.out.suffix.lower() != ".png":
            raise ConfigError(f"--out {args.out}: expected a .png file")
        if not args.out.parent.is_dir():
            raise ConfigError(f"--out {args.out}: folder {args.out.parent} does not exist")
        if args.generator is not None and args.domain != "in_domain":
            raise ConfigError("--generator shows in-domain latents only; drop --domain ood")
        if args.generator is not None and not args.generator.is_file():
            raise ConfigError(f"--generator {args.generator}: no such file")
        from guide_ray.world.sample import sample_grid

        path = sample_grid(args.out, args.identities, args.seed, args.domain, args.resolution,
                           generator_file=args.generator)
        print(f"wrote {path}")
        return 0
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: exists and is not a folder")
    from guide_ray.world.train import WorldTrainConfig, train_world

    report = train_world(args.out, WorldTrainConfig(), budget=args.max_steps, progress=not args.no_progress)
    for stage, (steps, seconds) in report.items():
        timing = f", {seconds:.2f} s/step" if seconds is not None else ""
        print(f"{stage}: {steps} step(s) this sitting{timing}")
    return 0
