"""`guide-ray submit JOB.yaml --address http://HEAD:8265`: run the job on a remote cluster as a Ray job.

Prints the submission id and how to follow it; with --wait, polls until the job ends and prints its
logs (exit 0 only if it succeeded, 1 if it ran and failed). --dry-run prints the request without
contacting the cluster. An address in a form it does not take, or where nothing listens, is a
one-line error with exit status 2 ("could not start") within a few seconds.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="job YAML inside this checkout")
    parser.add_argument("--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265")
    parser.add_argument("--output-dir", help="absolute run folder on shared storage (overrides the job's)")
    parser.add_argument("--limit", type=int, help="only the first N valid manifest rows")
    parser.add_argument("--submission-id",
                        help="explicit id (default: derived from the job, so re-submits are refused)")
    parser.add_argument("--wait", action="store_true", help="wait for the job to end and print its logs")
    parser.add_argument("--dry-run", action="store_true", help="print the request, submit nothing")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.config.job import load_job
    from guide_ray.engine.submit import build_submission, job_server_url, submit, wait

    job_server_url(args.address)  # a malformed address fails before anything else
    load_job(args.job)  # fail here, not on the cluster, for an invalid job
    sub = build_submission(args.job, output_dir=args.output_dir, limit=args.limit, submission_id=args.submission_id)
    if args.dry_run:
        print(json.dumps(asdict(sub), indent=2))
        return 0
    submission_id = submit(sub, args.address)
    print(f"submitted {submission_id}\nfollow: ray job logs --address {args.address} --follow {submission_id}")
    if not args.wait:
        return 0
    status, logs = wait(args.address, submission_id)
    print(logs)
    print(f"{submission_id}: {status.value}")
    return 0 if status.value == "SUCCEEDED" else 1
