"""`guide-ray verify RUN`: attack every unlearned identity of a run and map the collateral damage.

Writes RUN/verify/<identity_id>.parquet (one row each, committed atomically; finished rows are
never recomputed), then refreshes RUN/tables/ and RUN/report.html. Exit status: 0 when every
identity was verified, 1 when some verification failed or an identity had no ok result row to
attack, 2 when it could not start (not a run folder, unknown identity, no threshold), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder (the output_dir of `guide-ray run`)")
    parser.add_argument("--identity", action="append", default=[], metavar="IDENTITY",
                        help="verify only this identity (repeatable; default: every identity of the run)")
    parser.add_argument("--threshold", type=float,
                        help="match threshold on the ID cosine (needed for real networks; default: calibrated at "
                        "the job's verify.far where the backend has a population)")
    parser.add_argument("--address", help="join this Ray cluster (default: start a local one, or RAY_ADDRESS)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a new local cluster (default: all)")
    parser.add_argument("--num-gpus", type=float, help="GPUs of a new local cluster; may be logical")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.commands.run import TqdmProgress
    from guide_ray.engine.verify import VerifyOptions, verify_run
    from guide_ray.reduce.report import write_report

    options = VerifyOptions(identities=tuple(args.identity), threshold=args.threshold, address=args.address,
                            num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    with TqdmProgress(enabled=not args.no_progress) as progress:
        summary = verify_run(args.run, options, progress=progress)
    report = write_report(args.run.resolve())
    print(report.markdown)
    print(f"{summary.ok} verified, {summary.failed} failed, {summary.skipped} already verified, "
          f"{summary.unavailable} without an ok result row. Report: {report.html}")
    return 0 if summary.failed == 0 and summary.unavailable == 0 else 1
