"""Who may write a run folder: a marker that says "this is a guide-ray run", and one writer at a time.

* RUN/.guide-ray-run (the marker) is written when a run creates the folder (or adopts an empty
  one). A non-empty folder without it is refused, so `output_dir: ~/photos` never has files
  overwritten or deleted in it.
* RUN/.guide-ray.lock is held with an exclusive `fcntl.flock` for as long as a run writes the
  folder. The kernel releases it when the process exits, however it exits (SIGKILL, OOM kill),
  so a killed driver never leaves a stale lock that blocks its resume. The holder writes its
  host, pid and start time into the file so a refused second run can name it.
No torch, no ray.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from guide_ray import __version__
from guide_ray.errors import ConfigError
from guide_ray.utils.files import atomic_file

MARKER = ".guide-ray-run"
LOCK = ".guide-ray.lock"


def is_run_dir(run_dir: Path) -> bool:
    """True when `run_dir` carries the marker of a guide-ray run folder."""
    return (run_dir / MARKER).is_file()


def adopt(run_dir: Path) -> None:
    """Make sure `run_dir` is a run folder: create it (with the marker) when missing or empty.

    Raises ConfigError for a file, or for a non-empty folder without the marker: nothing in it is
    touched, and the message says how to proceed.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"output_dir {run_dir} is a file, not a folder; choose a folder for the run")
    if is_run_dir(run_dir):
        return
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(
            f"output_dir {run_dir} is not empty and is not a guide-ray run folder (no {MARKER} marker inside); "
            "nothing in it was touched. Choose a new or empty output_dir (or --output-dir); if it really is a "
            f"run folder from an older guide-ray, mark it with `touch {run_dir / MARKER}`"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "host": socket.gethostname(),
              "pid": os.getpid(), "code_version": __version__}
    with atomic_file(run_dir / MARKER) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


@contextmanager
def own(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` exclusively for the block (see module docstring); adopts it first.

    Raises ConfigError at once, naming the holder, when another process holds it.
    """
    adopt(run_dir)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"run folder {run_dir} is in use by another guide-ray run ({_describe_holder(fd)}); only one run "
                "may write a folder at a time. Wait for it to finish, stop it, or use another output_dir"
            ) from None
        holder = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        holder = {}
    if not holder:
        return "holder still starting up"
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {holder.get('started')} UTC"
