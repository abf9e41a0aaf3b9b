"""`guide-ray world` as a real process: bad arguments get one error line and exit 2; sample writes a PNG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "guide_ray.cli", "world", *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)


def _one_error(proc: subprocess.CompletedProcess[str], prefix: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("argv", "prefix", "message"), [
    (["train"], "guide-ray world train: error:", "the following arguments are required: --out"),
    (["train", "--out", "x", "--max-steps", "0"], "guide-ray world train: error:", "expected a positive integer"),
    (["sample", "--out", "grid.png", "--domain", "ffhq"], "guide-ray world sample: error:", "invalid choice: 'ffhq'"),
    (["sample", "--out", "grid.jpg"], "guide-ray world: error:", "--out grid.jpg: expected a .png file"),
    (["sample", "--out", "no/such/dir/grid.png"], "guide-ray world: error:", "does not exist"),
    (["launch"], "guide-ray world: error:", "invalid choice: 'launch'"),
    (["sample", "--out", "grid.png", "--generator", "no/such/generator.pt"], "guide-ray world: error:",
     "--generator no/such/generator.pt: no such file"),
    (["sample", "--out", "grid.png", "--generator", "README.md", "--domain", "ood"], "guide-ray world: error:",
     "--generator shows in-domain latents only"),
])
def test_bad_arguments_get_one_error_line(argv: list[str], prefix: str, message: str) -> None:
    assert message in _one_error(_cli(*argv), prefix)


def test_train_refuses_a_file_as_output_folder(tmp_path: Path) -> None:
    target = tmp_path / "weights.pt"
    target.write_text("not a folder")
    line = _one_error(_cli("train", "--out", str(target)), "guide-ray world: error:")
    assert "exists and is not a folder" in line
    assert target.read_text() == "not a folder"


def test_sample_writes_a_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    proc = _cli("sample", "--out", str(out), "--identities", "2", "--resolution", "32", "--domain", "ood")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (5 * 32, 2 * 32)  # 5 yaws × 2 identities


def test_train_resumes_across_processes(tmp_path: Path) -> None:
    """Two sittings of the shipped config: the second continues from the first one's checkpoint."""
    import torch

    first = _cli("train", "--out", str(tmp_path), "--max-steps", "1", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "id_loss: 1 step(s) this sitting" in first.stdout
    second = _cli("train", "--out", str(tmp_path), "--max-steps", "1", "--no-progress")
    assert second.returncode == 0, second.stderr
    ckpt = torch.load(tmp_path / "checkpoints" / "id_loss.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 2
    assert not (tmp_path / "id_loss.pt").exists()  # 2 of 2000 steps: the stage is not finished
