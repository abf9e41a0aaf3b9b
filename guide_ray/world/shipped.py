"""Where the trained world is read from, strictly: files checked against their sha256, plain state_dicts.

Two sources, in this order:
  1. `<weights_dir>/world/`, a folder written by `guide-ray world train --out <weights_dir>/world`:
     its files are checked against the `manifest.json` training wrote beside them (integrity; the
     user built them);
  2. the world shipped inside the package (guide_ray/world/weights/), checked against digests
     pinned here in code, so a changed file or a changed manifest.json is refused by name.
The shipped world is the output of `guide-ray world train` with its default config (docs/world.md
has the run and its measured quality); its manifest.json is copied beside it but not trusted.
Without either source the `world` backend fails with WeightsMissing saying how to train one.
Everything is read with torch.load(weights_only=True).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.utils.files import file_sha256
from guide_ray.world.generator import NEURAL_RENDERING_RESOLUTION, build_world_generator
from guide_ray.world.idnet import WorldIdentityNet
from guide_ray.world.train import CONFIG_FILE, FILES, MANIFEST_FILE

PACKAGED_DIR = Path(__file__).parent / "weights"
# sha256 of each shipped file; refreshed together with the files, never one without the other.
SHIPPED_SHA256: dict[str, str] = {
    "generator.pt": "cbf7f5e3ce08b5625afff7d0c06cf34a6b2d92fe48461e551bda89d0d3d939c8",
    "id_loss.pt": "84c18059a16cc1cc54c9e3aa40ab9f7bae47a2b27f926a2415df11c499c65577",
    "id_metric.pt": "4e345397d9223583a4636b79beda03091a9ebbd60e0e9d0a1a941145942cb145",
    "world.json": "c0b9768f88f195eac7ee28289a940e7d9fd9fe99c8e3091a3e049ef4172d9436",
}
WORLD_SUBDIR = "world"


@dataclass(frozen=True)
class WorldSource:
    folder: Path
    digests: dict[str, str]       # file name → expected sha256
    origin: str                   # "trained" (weights_dir/world) or "shipped"


def world_source(weights_dir: Path | str | None) -> WorldSource:
    """The folder the world is read from and the digests its files must have (see module docstring)."""
    trained = Path(weights_dir) / WORLD_SUBDIR if weights_dir is not None else None
    if trained is not None and (trained / MANIFEST_FILE).is_file():
        try:
            digests = json.loads((trained / MANIFEST_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise WeightsInvalid(f"{trained / MANIFEST_FILE}: not a world manifest ({exc})") from exc
        if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
            raise WeightsInvalid(f"{trained / MANIFEST_FILE}: expected {{file name: sha256}}")
        return WorldSource(trained, digests, "trained")
    if SHIPPED_SHA256:
        return WorldSource(PACKAGED_DIR, SHIPPED_SHA256, "shipped")
    where = trained if trained is not None else Path("weights") / WORLD_SUBDIR
    raise WeightsMissing(where / FILES["generator"],
                         f"this version of guide_ray ships no trained world; train it with `guide-ray world train "
                         f"--out {where}` (resumable; docs/world.md) and use that weights folder")


def verified_file(name: str, source: WorldSource) -> Path:
    """Path of world file `name` after checking its sha256; WeightsMissing / WeightsInvalid name it."""
    path = source.folder / name
    if not path.is_file():
        raise WeightsMissing(path, f"the world in {source.folder} is incomplete; rerun `guide-ray world train "
                                   f"--out {source.folder}` to finish it")
    if name not in source.digests:
        raise WeightsInvalid(f"{path}: no sha256 for this file in the world's manifest")
    digest = file_sha256(path)
    if digest != source.digests[name]:
        raise WeightsInvalid(f"{path}: sha256 {digest[:16]}… is not the recorded {source.digests[name][:16]}…; "
                             "the file was changed or damaged")
    return path


def _state(name: str, source: WorldSource) -> dict[str, torch.Tensor]:
    path = verified_file(name, source)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a damaged file
        raise WeightsInvalid(f"{path}: not a plain state_dict ({exc})") from exc


def world_config(source: WorldSource) -> dict:
    """world.json: the training config and generator kwargs the files were made with."""
    return json.loads(verified_file(CONFIG_FILE, source).read_text())


def load_world_generator(source: WorldSource):
    """The trained `world` TriPlaneGenerator (eval, frozen, CPU), strict state_dict load."""
    G = build_world_generator(0)
    G.load_state_dict(_state(FILES["generator"], source), strict=True)
    G.neural_rendering_resolution = NEURAL_RENDERING_RESOLUTION
    return G.eval().requires_grad_(False)


def load_identity_net(role: str, source: WorldSource) -> WorldIdentityNet:
    """The trained identity network `role` ('id_loss' or 'id_metric'), eval and frozen."""
    if role not in ("id_loss", "id_metric"):
        raise ValueError(f"role must be 'id_loss' or 'id_metric', got {role!r}")
    net = WorldIdentityNet()
    net.load_state_dict(_state(FILES[role], source), strict=True)
    return net.eval().requires_grad_(False)
