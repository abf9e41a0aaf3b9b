"""`guide-ray submit`: run a job on a remote Ray cluster as a Ray job (`ray job submit` semantics).

The request uploads the project folder as the runtime_env `working_dir` (code, jobs/, small
manifests; never .venv, .git, runs/ or weights/), and its entrypoint is `python -m guide_ray.cli
run <job> ...` on the head node, which joins the cluster through RAY_ADDRESS. torch, ray and the
other dependencies come from the cluster image (cluster/README.md). The submission id is derived
from the job file and arguments, so submitting the same thing twice is refused instead of
running twice. The output folder must be an absolute path on storage every node sees: a relative
one would resolve inside the job's temporary working_dir and vanish with it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml
from ray.job_submission import JobStatus, JobSubmissionClient

import guide_ray
from guide_ray.errors import ConfigError, GuideRayError

log = logging.getLogger(__name__)

EXCLUDES = [".git", ".venv", "runs", "weights", "**/__pycache__", ".pytest_cache", "*.egg-info"]
TERMINAL = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
CONNECT_TIMEOUT_S = 3.0
ADDRESS_FORMS = "http://HEAD:8265, https://HEAD:PORT or HEAD:PORT (the Ray job server, i.e. the dashboard port)"


@dataclass(frozen=True)
class Submission:
    """Everything sent to JobSubmissionClient.submit_job (unit-tested without a cluster)."""

    entrypoint: str
    submission_id: str
    runtime_env: dict[str, object]
    metadata: dict[str, str] = field(default_factory=dict)


def project_root() -> Path:
    """The source checkout that holds this package (uploaded as working_dir)."""
    root = Path(guide_ray.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise ConfigError(f"guide_ray at {root} is not a source checkout; run `guide-ray submit` from a checkout")
    return root


def build_submission(
    job_path: Path,
    *,
    output_dir: str | None = None,
    limit: int | None = None,
    submission_id: str | None = None,
    root: Path | None = None,
) -> Submission:
    """The submit request for `job_path` (a job YAML inside `root`, default the checkout).

    Raises ConfigError when the job lies outside the uploaded folder or its output folder is relative.
    """
    root = (root or project_root()).resolve()
    job_file = job_path.resolve()
    try:
        rel = job_file.relative_to(root).as_posix()
    except ValueError as exc:
        raise ConfigError(f"{job_file} is outside {root}, the folder uploaded as the job's working_dir") from exc
    text = job_file.read_text()
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"job file {job_file}: expected a mapping with a 'name'")
    out = output_dir or raw.get("output_dir")
    if not isinstance(out, str) or not PurePosixPath(out).is_absolute():
        raise ConfigError(
            f"output folder {out!r} is not an absolute path: on a cluster it would land in the job's temporary "
            "working_dir and be lost. Pass --output-dir /mnt/cluster_storage/runs/<name> (shared storage)"
        )
    args = ["python", "-m", "guide_ray.cli", "run", rel, "--no-progress", "--output-dir", out]
    if limit is not None:
        args += ["--limit", str(limit)]
    entrypoint = shlex.join(args)
    digest = hashlib.sha256(f"{text}\n{entrypoint}\n{guide_ray.__version__}".encode()).hexdigest()[:12]
    return Submission(
        entrypoint=entrypoint,
        submission_id=submission_id or f"guide-ray-{raw['name']}-{digest}",
        runtime_env={"working_dir": str(root), "excludes": list(EXCLUDES), "env_vars": {"RAY_DEDUP_LOGS": "0"}},
        metadata={"guide_ray_version": guide_ray.__version__, "job_name": raw["name"], "job_file": rel},
    )


def auth_headers() -> dict[str, str]:
    """The bearer token for a token-auth cluster, from where Ray keeps it.

    Ray 2.59+ turns token auth on for clusters it starts, but the job SDK only attaches the token
    when RAY_AUTH_MODE=token is set in the *client's* environment. So the token is sent whenever
    one is found: RAY_AUTH_TOKEN, then the file named by RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token.
    RAY_AUTH_MODE=disabled sends none.
    """
    if os.environ.get("RAY_AUTH_MODE") == "disabled":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if not token:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
        token = path.read_text().strip() if path.is_file() else ""
    return {"Authorization": f"Bearer {token}"} if token else {}


def job_server_url(address: str) -> str:
    """`address` as the job server's http(s) URL; ConfigError for a form `submit` does not take.

    A bare HOST:PORT means http://HOST:PORT. ray:// (Ray Client), 'auto' and GCS addresses are
    refused here: the Ray SDK would spend 30-40 s retrying them before failing.
    """
    text = address.strip()
    url = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or (port is None and "://" not in text):
        raise ConfigError(f"--address {address!r} is not a job server address; use {ADDRESS_FORMS}")
    return url


def check_reachable(url: str) -> None:
    """Raise GuideRayError within CONNECT_TIMEOUT_S when nothing accepts a connection at `url`."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise GuideRayError(f"nothing listens at {url} ({reason}); --address takes {ADDRESS_FORMS}") from None


def _client(address: str) -> JobSubmissionClient:
    url = job_server_url(address)
    check_reachable(url)
    try:
        return JobSubmissionClient(url, headers=auth_headers())
    except (ConnectionError, ValueError, RuntimeError) as exc:  # something answered, but not a Ray job server
        raise GuideRayError(f"no Ray job server at {url}: {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                            f"--address takes {ADDRESS_FORMS}") from None


def submit(sub: Submission, address: str) -> str:
    """Send `sub` to the cluster's job server at `address` (http://HEAD:8265); returns the submission id.

    Raises GuideRayError for a duplicate submission id.
    """
    client = _client(address)
    try:
        return client.submit_job(entrypoint=sub.entrypoint, submission_id=sub.submission_id,
                                 runtime_env=sub.runtime_env, metadata=sub.metadata)
    except RuntimeError as exc:
        if "already exists" in str(exc):
            raise GuideRayError(
                f"submission {sub.submission_id!r} already exists on {address}: this exact job was submitted "
                "before (see `ray job status`); pass --submission-id to run it again"
            ) from exc
        raise


def wait(
    address: str, submission_id: str, *, poll_s: float = 5.0, timeout_s: float | None = None
) -> tuple[JobStatus, str]:
    """Poll until the job ends (or `timeout_s`); returns its status and logs."""
    client = _client(address)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    status = client.get_job_status(submission_id)
    while status not in TERMINAL and (deadline is None or time.monotonic() < deadline):
        time.sleep(poll_s)
        status = client.get_job_status(submission_id)
        log.info("%s: %s", submission_id, status.value)
    return status, client.get_job_logs(submission_id)
