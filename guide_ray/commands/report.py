"""`guide-ray report RUN`: summary tables (parquet, csv, markdown) and report.html for a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the job's output_dir (holds results/)")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.errors import ConfigError
    from guide_ray.reduce.report import write_report

    if not (args.run_dir / "results").is_dir():
        raise ConfigError(f"{args.run_dir} is not a run folder (no results/ inside)")
    report = write_report(args.run_dir)
    print(report.markdown)
    print(f"tables: {', '.join(str(p) for p in report.tables.values())}\nreport: {report.html}")
    return 0
