"""`guide-ray run JOB.yaml`: process a job's manifest on Ray, then write the report.

Exit status: 0 when every identity is ok, 1 when the run completed but some identities failed or
manifest rows were rejected (details in the report), 2 when the run could not start (bad job,
missing weights, a folder that is not a run or is in use by another run), 130 on Ctrl-C (finished
identities stay committed; re-run to resume).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guide_ray.config.job import JobSpec
    from guide_ray.engine.run import RunOptions
    from guide_ray.engine.scheduler import Counts
    from guide_ray.engine.verify import VerifySummary

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="job YAML (see jobs/ and docs/engine.md)")
    parser.add_argument("--address", help="join this Ray cluster (default: start a local one, or RAY_ADDRESS)")
    parser.add_argument("--limit", type=int, help="only the first N valid manifest rows (overrides the job's limit)")
    parser.add_argument("--output-dir", type=Path, help="run folder, overriding the job's output_dir")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a new local cluster (default: all)")
    parser.add_argument("--num-gpus", type=float, help="GPUs of a new local cluster; may be logical")
    parser.add_argument("--retry-failed", action="store_true", help="recompute identities recorded as failed")
    parser.add_argument("--replace-stale", action="store_true",
                        help="move rows computed under other settings to superseded/ and recompute them")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and run keys, run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.config.job import load_job, with_output_dir
    from guide_ray.engine.run import RunOptions, plan, run_job
    from guide_ray.errors import ConfigError
    from guide_ray.reduce.report import write_report
    from guide_ray.store.ownership import adopt
    from guide_ray.utils.text import escape

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    job = load_job(args.job)
    if args.output_dir is not None:
        job = with_output_dir(job, args.output_dir.resolve())
    options = RunOptions(address=args.address, limit=args.limit, retry_failed=args.retry_failed,
                         replace_stale=args.replace_stale, num_cpus=args.num_cpus, num_gpus=args.num_gpus)
    if args.dry_run:
        adopt(job.run_dir)  # refuses a folder that is not a run before anything is written to it
        p = plan(job, options)
        print(f"run dir: {job.run_dir}\njob_key: {p.job_key}\nweights: {p.weights.core} (encoder {p.weights.encoder})\n"
              f"to run: {len(p.todo)}, already done: {len(p.skipped)}, stale: {len(p.stale)}, "
              f"invalid rows: {len(p.errors)}")
        for item in p.todo:
            print(f"  {escape(item.identity_id)}  run_key={item.run_key}  variant={item.variant}  seed={item.seed}")
        if p.errors:
            print("rejected manifest rows:")
        for err in p.errors:
            print(f"  row {err.row} ({escape(err.identity_id or '?')}): {escape(err.reason)}")
        return 0
    with TqdmProgress(enabled=not args.no_progress) as progress:
        summary = run_job(job, options, progress=progress)
    verified = _verify_after(job, options)
    report = write_report(job.run_dir)
    print(report.markdown)
    print(f"{summary.ok} ok, {summary.failed} failed, {summary.skipped} already done, "
          f"{summary.invalid_rows} invalid manifest rows. Report: {report.html}")
    if verified is not None:
        print(f"verify: {verified.ok} verified, {verified.failed} failed, {verified.skipped} already verified")
    return 0 if summary.clean and (verified is None or verified.failed == 0) else 1


def _verify_after(job: JobSpec, options: RunOptions) -> VerifySummary | None:
    """The job option `verify:`: attack every identity the run finished, on the same cluster settings."""
    if job.verify is None:
        return None
    from guide_ray.engine.verify import VerifyOptions, verify_run

    return verify_run(job.run_dir, VerifyOptions(address=options.address, num_cpus=options.num_cpus,
                                                 num_gpus=options.num_gpus))


class TqdmProgress:
    """The driver's progress bar: identities done / failed / running / queued, with tqdm's ETA."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        self._redirect = None

    def __enter__(self) -> TqdmProgress:
        if self.enabled:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def update(self, counts: Counts) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=counts.total, unit="identity", dynamic_ncols=True)
        self._bar.n = counts.ok + counts.failed
        self._bar.set_postfix(ok=counts.ok, failed=counts.failed, running=counts.running,
                              queued=counts.queued, retried=counts.retried, refresh=False)
        self._bar.refresh()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(exc_type, exc, tb)
