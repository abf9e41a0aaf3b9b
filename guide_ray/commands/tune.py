"""`guide-ray tune TUNE.yaml`: search GUIDE's hyperparameters with Ray Tune, then write the trial table,
best_job.yaml, the ID-vs-damage plot and tune.html into the spec's output_dir.

Exit status: 0 when the search finished and a best trial exists, 1 when no trial completed, 2 when
the spec is invalid (nothing started), 130 on Ctrl-C (continue with `guide-ray tune --resume`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="tune YAML (see jobs/tune-quickstart.yaml and docs/tune.md)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted search (Tuner.restore); finished trials are not rerun")
    parser.add_argument("--address", help="join this Ray cluster (default: start a local one, or RAY_ADDRESS)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a new local cluster (default: all)")
    parser.add_argument("--num-gpus", type=float, help="GPUs of a new local cluster; may be logical")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.config.tune import load_tune
    from guide_ray.engine.tune import run_tune
    from guide_ray.reduce.tune_report import write_outputs

    spec, base = load_tune(args.spec)
    run = run_tune(spec, base, resume=args.resume, address=args.address, num_cpus=args.num_cpus,
                   num_gpus=args.num_gpus)
    outputs = write_outputs(spec, base, run.records)
    print(outputs.markdown)
    print(f"{len(run.records)} trials. Table: {outputs.paths['md']}  Plot: {outputs.paths['plot']}  "
          f"Report: {outputs.paths['html']}")
    if run.interrupted:
        print(f"interrupted: continue with `guide-ray tune --resume {args.spec}` (finished trials are kept)")
        return 130
    if outputs.best is None:
        print("no trial completed; no best_job.yaml written")
        return 1
    print(f"best job: {outputs.paths['best_job']}")
    return 0
