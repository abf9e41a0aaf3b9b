"""The Ray job request `guide-ray submit` builds, and (slow) a real submission to a local head."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from ray.job_submission import JobSubmissionClient

from guide_ray import __version__
from guide_ray.engine import submit as submit_mod
from guide_ray.engine.submit import Submission, build_submission, project_root
from guide_ray.errors import ConfigError, GuideRayError

ROOT = Path(__file__).resolve().parents[2]


def test_request_for_a_shipped_job() -> None:
    sub = build_submission(ROOT / "jobs" / "ffhq-guide.yaml", output_dir="/mnt/cluster_storage/runs/x", limit=5)
    assert shlex.split(sub.entrypoint) == ["python", "-m", "guide_ray.cli", "run", "jobs/ffhq-guide.yaml",
                                           "--no-progress", "--output-dir", "/mnt/cluster_storage/runs/x",
                                           "--limit", "5"]
    assert sub.runtime_env["working_dir"] == str(ROOT) == str(project_root())
    assert {".git", ".venv", "runs", "weights"} <= set(sub.runtime_env["excludes"])
    assert sub.metadata == {"guide_ray_version": __version__, "job_name": "ffhq-guide", "job_file": "jobs/ffhq-guide.yaml"}
    assert sub.submission_id.startswith("guide-ray-ffhq-guide-")


def test_submission_id_is_stable_and_follows_the_arguments() -> None:
    job = ROOT / "jobs" / "ffhq-guide.yaml"
    a = build_submission(job, output_dir="/shared/a")
    assert build_submission(job, output_dir="/shared/a").submission_id == a.submission_id
    assert build_submission(job, output_dir="/shared/b").submission_id != a.submission_id
    assert build_submission(job, output_dir="/shared/a", submission_id="mine").submission_id == "mine"


def test_relative_output_folder_is_refused() -> None:
    with pytest.raises(ConfigError, match="not an absolute path"):
        build_submission(ROOT / "jobs" / "quickstart.yaml")


def test_job_outside_the_uploaded_folder_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "j.yaml"
    job.write_text("name: j\noutput_dir: /shared/j\n")
    with pytest.raises(ConfigError, match="outside"):
        build_submission(job, root=ROOT)


class FakeClient:
    calls: list[tuple[str, dict]] = []

    def __init__(self, address: str, headers: dict[str, str]) -> None:
        self.address, self.headers = address, headers

    def submit_job(self, **kwargs: object) -> str:
        FakeClient.calls.append((self.address, kwargs))
        if kwargs["submission_id"] == "dup":
            raise RuntimeError("Request failed with status code 500: Job with submission_id dup already exists.")
        return str(kwargs["submission_id"])


def test_submit_sends_the_request_and_names_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submit_mod, "JobSubmissionClient", FakeClient)
    monkeypatch.setattr(submit_mod, "check_reachable", lambda url: None)  # no server named "head" here
    sub = Submission(entrypoint="python -m x", submission_id="s1", runtime_env={"working_dir": "/p"}, metadata={})
    assert submit_mod.submit(sub, "http://head:8265") == "s1"
    assert FakeClient.calls[-1] == ("http://head:8265", {"entrypoint": "python -m x", "submission_id": "s1",
                                                          "runtime_env": {"working_dir": "/p"}, "metadata": {}})
    with pytest.raises(GuideRayError, match="already exists.*--submission-id"):
        submit_mod.submit(replace(sub, submission_id="dup"), "http://head:8265")


@pytest.mark.parametrize(("address", "url"), [("http://head:8265", "http://head:8265"),
                                             ("https://head:443", "https://head:443"), ("head:8265", "http://head:8265"),
                                             (" 10.0.0.1:8265 ", "http://10.0.0.1:8265")])
def test_accepted_address_forms(address: str, url: str) -> None:
    assert submit_mod.job_server_url(address) == url


@pytest.mark.parametrize("address", ["ray://head:10001", "auto", "head", "head:port", "gcs://head:6379", ""])
def test_refused_address_forms(address: str) -> None:
    with pytest.raises(ConfigError, match="is not a job server address; use http://HEAD:8265"):
        submit_mod.job_server_url(address)


def test_auth_token_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("from-file\n")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    assert submit_mod.auth_headers() == {"Authorization": "Bearer from-file"}
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert submit_mod.auth_headers() == {"Authorization": "Bearer from-env"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert submit_mod.auth_headers() == {}
    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "absent"))
    assert submit_mod.auth_headers() == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _local_head() -> Iterator[str]:
    """A `ray start --head --block` in its own process group, so exactly its processes are stopped."""
    temp = Path(tempfile.mkdtemp(prefix="grs", dir="/tmp"))  # short: Ray's socket paths have a length limit
    dashboard = _free_port()
    cmd = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--num-cpus=1",
           f"--port={_free_port()}", f"--ray-client-server-port={_free_port()}", "--include-dashboard=true",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--temp-dir={temp}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    head = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                JobSubmissionClient(address, headers=submit_mod.auth_headers()).list_jobs()
                break
            except (ConnectionError, RuntimeError):
                time.sleep(1)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.ray
def test_submit_to_a_local_head_runs_in_the_uploaded_checkout(tmp_path: Path) -> None:
    """A real head (token auth on by default since Ray 2.59): submit, wait, the entrypoint sees the uploaded code."""
    with _local_head() as address:
        sub = build_submission(ROOT / "jobs" / "ffhq-guide.yaml", output_dir=str(tmp_path / "out"))
        probe = ("import json, guide_ray, pathlib; "
                 "print(json.dumps({'v': guide_ray.__version__, 'where': str(pathlib.Path(guide_ray.__file__).parent)}))")
        sub = replace(sub, entrypoint=f"python -c {shlex.quote(probe)}")
        submission_id = submit_mod.submit(sub, address)
        status, logs = submit_mod.wait(address, submission_id, poll_s=1.0, timeout_s=180)
        assert status.value == "SUCCEEDED", logs
        seen = json.loads(logs.strip().splitlines()[-1])
        assert seen["v"] == __version__
        assert not seen["where"].startswith(str(ROOT))  # ran from the uploaded copy, not this checkout
        with pytest.raises(GuideRayError, match="already exists"):
            submit_mod.submit(sub, address)
