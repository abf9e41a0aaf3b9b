"""engine.leftovers without Ray: only recorded processes (same pid AND same start time) are ended."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from guide_ray.engine import leftovers


def _record(run_dir: Path, processes: list[list[int]], host: str | None = None) -> None:
    (run_dir / leftovers.RECORD).write_text(json.dumps({
        "host": host or socket.gethostname(), "driver_pid": 999999, "node_id": "n" * 56, "processes": processes}))


def test_only_the_recorded_process_is_ended(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        start = leftovers._start_time(victim.pid)
        # same pid, other start time: a reused pid, not ours
        _record(tmp_path, [[victim.pid, start + 1], [bystander.pid, leftovers._start_time(bystander.pid) - 1]])
        assert leftovers.end_leftovers(tmp_path) == []
        assert victim.poll() is None and bystander.poll() is None
        assert not (tmp_path / leftovers.RECORD).exists()  # handled once
        _record(tmp_path, [[victim.pid, start]])
        assert leftovers.end_leftovers(tmp_path) == [victim.pid]
        assert victim.wait(timeout=10) != 0 and bystander.poll() is None
    finally:
        for proc in (victim, bystander):
            proc.kill()
            proc.wait()


def test_a_record_from_another_host_is_not_acted_on(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        _record(tmp_path, [[victim.pid, leftovers._start_time(victim.pid)]], host="elsewhere")
        assert leftovers.end_leftovers(tmp_path) == [] and victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_record_lists_this_process_tree(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        leftovers.record(tmp_path, "abc")
        rec = json.loads((tmp_path / leftovers.RECORD).read_text())
        assert rec["driver_pid"] == os.getpid() and rec["node_id"] == "abc"
        assert [child.pid, leftovers._start_time(child.pid)] in rec["processes"]
        leftovers.forget(tmp_path)
        assert not (tmp_path / leftovers.RECORD).exists()
    finally:
        child.kill()
        child.wait()
