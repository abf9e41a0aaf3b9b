"""End the Ray processes a killed driver's local cluster left behind (Linux /proc only).

Ray ties most of a local cluster's processes to the driver that started it, but its dashboard
and runtime-env agents outlive a SIGKILL of the driver (they are re-parented to init and keep
running). So a driver that starts a local cluster records it in RUN/ray_local.json (host,
driver pid, node id, and every process below the driver with its start time); a clean exit
removes the record. The next run on the folder holds the run lock, which proves the recording
driver is gone, and ends what is still alive of that cluster: the recorded processes (matched
by pid *and* start time, so a reused pid is never hit) and any process whose environment carries
the recorded cluster's node id (RAY_NODE_ID, unique per cluster), which catches agents started
after the record.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

from guide_ray.utils.files import atomic_file

log = logging.getLogger(__name__)

RECORD = "ray_local.json"
GRACE_S = 3.0


def record(run_dir: Path, node_id: str) -> None:
    """Write RUN/ray_local.json for the local cluster this process started."""
    me = os.getpid()
    procs = [[pid, _start_time(pid)] for pid in _descendants(me)]
    payload = {"host": socket.gethostname(), "driver_pid": me, "driver_start": _start_time(me),
               "node_id": node_id, "processes": [p for p in procs if p[1] is not None]}
    with atomic_file(run_dir / RECORD) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")


def forget(run_dir: Path) -> None:
    """The cluster was shut down cleanly: nothing to end next time."""
    (run_dir / RECORD).unlink(missing_ok=True)


def end_leftovers(run_dir: Path) -> list[int]:
    """End what is left of the local cluster recorded in `run_dir`; returns the pids ended.

    Call only while holding the run lock (engine.run does), so the recording driver is dead.
    """
    path = run_dir / RECORD
    if not path.is_file():
        return []
    try:
        rec = json.loads(path.read_text())
    except ValueError:
        rec = {}
    if rec.get("host") != socket.gethostname():
        log.warning("%s records a local Ray cluster on host %s; its processes cannot be checked from here",
                    path, rec.get("host"))
        path.unlink()
        return []
    recorded = {int(pid): start for pid, start in rec.get("processes", [])}
    alive = {pid for pid, start in recorded.items() if _start_time(pid) == start}
    if rec.get("node_id"):
        alive |= _with_node_id(str(rec["node_id"]))
    alive -= {os.getpid(), int(rec.get("driver_pid", -1))}
    ended = _terminate(sorted(alive))
    if ended:
        log.warning("ended %d leftover Ray process(es) of this run's earlier local cluster (node %s, driver pid "
                    "%s): pids %s", len(ended), rec.get("node_id"), rec.get("driver_pid"), ", ".join(map(str, ended)))
    path.unlink()
    return ended


def _terminate(pids: list[int]) -> list[int]:
    ended = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            ended.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_exists(p) for p in ended):
        time.sleep(0.1)
    for pid in ended:
        if _exists(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return ended


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie is dead; its parent has not reaped it yet


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot (field 22 of /proc/PID/stat): with the pid, a unique name."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat_fields(pid)
        if fields:
            children.setdefault(int(fields[1]), []).append(pid)
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def _with_node_id(node_id: str) -> set[int]:
    """Processes of this user whose environment says RAY_NODE_ID=`node_id`."""
    wanted = f"RAY_NODE_ID={node_id}".encode()
    found = set()
    for pid in _all_pids():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if wanted in env.split(b"\0"):
            found.add(pid)
    return found
