"""The run-folder marker and the one-writer lock (in-process; the two-process case is in tests/engine)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from guide_ray.errors import ConfigError
from guide_ray.store import ownership


def test_a_new_or_empty_folder_is_adopted_with_a_marker(tmp_path: Path) -> None:
    for run_dir in (tmp_path / "new" / "run", tmp_path / "empty"):
        if run_dir.name == "empty":
            run_dir.mkdir()
        ownership.adopt(run_dir)
        marker = json.loads((run_dir / ownership.MARKER).read_text())
        assert marker["host"] == socket.gethostname() and marker["pid"] == os.getpid()
        assert ownership.is_run_dir(run_dir)
        ownership.adopt(run_dir)  # a marked folder is accepted again, contents and all


def test_a_foreign_folder_is_refused_and_untouched(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match=r"is not empty and is not a guide-ray run folder .*touch .*\.guide-ray-run"):
        ownership.adopt(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["holiday.jpg"]
    a_file = tmp_path / "holiday.jpg"
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        ownership.adopt(a_file)


def test_a_second_holder_is_refused_and_named(tmp_path: Path) -> None:
    with ownership.own(tmp_path / "run"):
        holder = json.loads((tmp_path / "run" / ownership.LOCK).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        # flock belongs to the open file description: a second open in this process conflicts too
        with pytest.raises(ConfigError) as err, ownership.own(tmp_path / "run"):
            pass
        message = str(err.value)
        assert "is in use by another guide-ray run" in message and "\n" not in message
        assert f"host {socket.gethostname()}, pid {os.getpid()}, started {holder['started']} UTC" in message
    with ownership.own(tmp_path / "run"):  # released on exit: the next run gets it
        pass
