"""The trained world shipped inside the package (guide_ray/world/weights/), loaded strictly.

`guide-ray world train --out guide_ray/world/weights` wrote these files; their sha256 digests are
pinned here, in code, so a changed or truncated file (or a changed manifest.json beside it) is
refused with a message naming it instead of silently giving other numbers. Everything is a plain
state_dict read with torch.load(weights_only=True).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.world.generator import NEURAL_RENDERING_RESOLUTION, build_world_generator
from guide_ray.world.idnet import WorldIdentityNet
from guide_ray.utils.files import file_sha256
from guide_ray.world.train import CONFIG_FILE, FILES

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Written by `guide-ray world train --out guide_ray/world/weights` (docs/world.md); refresh both
# the files and these digests together, never one without the other.
SHIPPED_SHA256: dict[str, str] = {}
HOW_TO_GET = ("it ships with guide_ray (guide_ray/world/weights/); reinstall the package, or rebuild it "
              "with `guide-ray world train --out guide_ray/world/weights` (docs/world.md)")


def verified_file(name: str, folder: Path = WEIGHTS_DIR) -> Path:
    """Path of shipped file `name` after checking its sha256; WeightsMissing / WeightsInvalid name it."""
    path = folder / name
    if not path.is_file():
        raise WeightsMissing(path, HOW_TO_GET)
    if name not in SHIPPED_SHA256:
        raise WeightsInvalid(f"{path}: no pinned sha256 for this file in guide_ray.world.shipped")
    digest = file_sha256(path)
    if digest != SHIPPED_SHA256[name]:
        raise WeightsInvalid(f"{path}: sha256 {digest[:16]}… is not the shipped {SHIPPED_SHA256[name][:16]}…; "
                             f"the file was changed or damaged ({HOW_TO_GET})")
    return path


def _state(name: str, folder: Path) -> dict[str, torch.Tensor]:
    path = verified_file(name, folder)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise WeightsInvalid(f"{path}: not a plain state_dict ({exc})") from exc


def world_config(folder: Path = WEIGHTS_DIR) -> dict:
    """world.json: the training config and generator kwargs the files were made with."""
    return json.loads(verified_file(CONFIG_FILE, folder).read_text())


def load_world_generator(folder: Path = WEIGHTS_DIR):
    """The trained `world` TriPlaneGenerator (eval, frozen, CPU), strict state_dict load."""
    G = build_world_generator(0)
    G.load_state_dict(_state(FILES["generator"], folder), strict=True)
    G.neural_rendering_resolution = NEURAL_RENDERING_RESOLUTION
    return G.eval().requires_grad_(False)


def load_identity_net(role: str, folder: Path = WEIGHTS_DIR) -> WorldIdentityNet:
    """The trained identity network `role` ('id_loss' or 'id_metric'), eval and frozen."""
    if role not in ("id_loss", "id_metric"):
        raise ValueError(f"role must be 'id_loss' or 'id_metric', got {role!r}")
    net = WorldIdentityNet()
    net.load_state_dict(_state(FILES[role], folder), strict=True)
    return net.eval().requires_grad_(False)
