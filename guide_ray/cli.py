"""`guide-ray` entry point: parse, dispatch to one subcommand module, turn GuideRayError into exit 2.

Each subcommand lives in `guide_ray.commands.<name>` with `add_parser(subparsers)` and
`main(args) -> int`; modules are imported only when their subcommand runs, so `--help` and
argument errors stay fast and never import torch or ray.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from guide_ray import __version__
from guide_ray.errors import GuideRayError

COMMANDS = {
    "unlearn": "unlearn one identity with the pure-PyTorch core (no Ray)",
    "run": "process a job's manifest on a Ray cluster (local by default)",
    "tune": "search GUIDE's hyperparameters with Ray Tune on a fixed validation set of identities",
    "submit": "submit a job to a remote Ray cluster as a Ray job",
    "verify": "attack each unlearned identity of a run (re-inversion, pose sweep, re-learning); map collateral",
    "report": "aggregate a run's per-identity results into summary tables and an HTML page",
    "manifest": "create a Parquet manifest of identities",
    "weights": "list the pretrained files a backend needs: found / missing / wrong hash",
    "fid-stats": "FID statistics of a folder of real images (for fid.real_stats)",
    "world": "train the synthetic face world's networks, or draw a grid of its identities",
    "bench": "benchmarks: step speed, memory, engine throughput, scaling model (JSON + Markdown + PNG)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guide-ray", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"guide-ray {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"guide_ray.commands.{name.replace('-', '_')}")
        module.add_parser(sub, name, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.handler(args) or 0)
    except GuideRayError as exc:
        print(f"guide-ray {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"guide-ray {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
