"""LPIPS-VGG, GUIDE's perceptual loss, with the VGG16 trunk read from a local file.

GUIDE calls `lpips.LPIPS(net="vgg")` (lpips 0.1.4: version 0.1, calibrated linear heads, inputs
in [-1, 1], no resize). That constructor downloads torchvision's ImageNet VGG16 at run time; here
the `lpips` package builds a random trunk (`pnet_rand=True`, nothing downloads) and the trunk is
then filled from `vgg16-397923af.pth` in the weights directory. The linear heads ship inside the
`lpips` package. Must not import ray.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.nets.base import FrozenNet
from guide_ray.models.weights import VGG16


class LpipsVGG(FrozenNet):
    """d(x, y) = LPIPS-VGG v0.1 per sample. x, y: [B, 3, H, W] in [-1, 1] → [B]. Frozen, eval mode.

    Raises WeightsMissing if `vgg_path` is absent and WeightsInvalid if it is not torchvision's
    VGG16 state_dict (every name and shape of `torchvision.models.vgg16()` and nothing else).
    The file's sha256 is checked by the caller (`guide_ray.models.weights`), not here.
    """

    name = "lpips-vgg-v0.1"
    stand_in = False

    def __init__(self, vgg_path: Path | str) -> None:
        super().__init__()
        import lpips

        features = load_vgg16_features(Path(vgg_path))
        with warnings.catch_warnings():
            # lpips passes the deprecated `pretrained=False` to torchvision; harmless here.
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision.models._utils")
            self.lpips = lpips.LPIPS(net="vgg", version="0.1", pnet_rand=True, verbose=False)
        self.lpips.net.load_state_dict(_to_lpips_slices(self.lpips.net, features), strict=True)
        self.freeze()


    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.lpips(x, y, normalize=False).flatten()          # [B, 1, 1, 1] → [B]


def load_vgg16_features(path: Path) -> dict[str, Tensor]:
    """`features.<i>.<weight|bias>` of torchvision's VGG16 file, after a strict name/shape check."""
    if not path.is_file():
        raise WeightsMissing(path, VGG16.how_to_get)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise WeightsInvalid(f"{path}: not a tensors-only PyTorch state_dict ({exc})") from exc
    if not isinstance(state, dict):
        raise WeightsInvalid(f"{path}: expected a state_dict, got {type(state).__name__}")
    expected = _vgg16_shapes()
    got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, Tensor)}
    if got != expected or len(got) != len(state):
        missing = sorted(set(expected) - set(got))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise WeightsInvalid(
            f"{path} is not torchvision's VGG16 state_dict: missing {missing[:6]}, "
            f"unexpected {unexpected[:6]}, wrong shape {wrong[:6]}"
        )
    return {k: v for k, v in state.items() if k.startswith("features.")}


def _vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of torchvision's VGG16, built on the meta device (no memory, no download)."""
    from torchvision.models import vgg16

    with torch.device("meta"):
        reference = vgg16(weights=None)
    return {k: tuple(v.shape) for k, v in reference.state_dict().items()}


def _to_lpips_slices(trunk: nn.Module, features: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename `features.<i>.<p>` to lpips' `slice<k>.<i>.<p>`: lpips keeps torchvision's layer index i."""
    renamed = {}
    for key in trunk.state_dict():
        _slice, index, param = key.split(".")
        renamed[key] = features[f"features.{index}.{param}"]
    return renamed
