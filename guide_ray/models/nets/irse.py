"""IR-SE50 and IR-101 face-recognition backbones, with strict loaders for the released files.

GUIDE uses two ResNet-IR face networks: IR-SE50 (`model_ir_se50.pth`, pSp's copy of TreB1eN's
ArcFace) for the identity *loss*, and CurricularFace's IR-101 (`CurricularFace_Backbone.pth`) for
the identity *metric*. Both are the same `Backbone` with different depth, unit type and final
BatchNorm. Attribute names (`input_layer`, `body.<i>.res_layer.<j>`, `shortcut_layer`,
`output_layer`) are chosen so the released state_dicts load with `strict=True`; the key/shape
lists are pinned by tests against /work/shared/fixtures/idnet/*.keys.json.

Only `torch.load(weights_only=True)` is used; nothing is downloaded. Must not import ray.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.errors import WeightsInvalid, WeightsMissing
from guide_ray.models.weights import CURRICULARFACE, IR_SE50

log = logging.getLogger(__name__)

# Units per stage; stage widths are always 64, 128, 256, 512 and each stage starts with stride 2.
_UNITS_PER_STAGE = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
_STAGE_DEPTHS = (64, 128, 256, 512)
_SE_REDUCTION = 16
# Old PyTorch (< 0.4.1) did not save BatchNorm's step counter; it is unused in eval mode.
_TOLERATED_MISSING_SUFFIX = ".num_batches_tracked"


class SEModule(nn.Module):
    """Squeeze-excitation gate: channel weights from a global average, via a 1/16 bottleneck."""

    def __init__(self, channels: int, reduction: int = _SE_REDUCTION) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))  # [B, C, 1, 1]
        return x * gate


class bottleneck_IR(nn.Module):  # noqa: N801 (upstream class name, kept for grep across trees)
    """Pre-activation IR unit: BN-conv3-PReLU-conv3(stride)-BN, plus an identity/projection skip."""

    def __init__(self, in_channel: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channel == depth:
            # A 1x1 max-pool is a parameter-free strided identity: it only subsamples.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        self.res_layer = nn.Sequential(*self._residual(in_channel, depth, stride))

    @staticmethod
    def _residual(in_channel: int, depth: int, stride: int) -> list[nn.Module]:
        return [
            nn.BatchNorm2d(in_channel),                                   # res_layer.0
            nn.Conv2d(in_channel, depth, 3, 1, 1, bias=False),            # res_layer.1
            nn.PReLU(depth),                                              # res_layer.2
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),            # res_layer.3
            nn.BatchNorm2d(depth),                                        # res_layer.4
        ]

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class bottleneck_IR_SE(bottleneck_IR):  # noqa: N801 (upstream class name)
    """IR unit whose residual branch ends in a squeeze-excitation gate (res_layer.5)."""

    @staticmethod
    def _residual(in_channel: int, depth: int, stride: int) -> list[nn.Module]:
        return [*bottleneck_IR._residual(in_channel, depth, stride), SEModule(depth)]


class Backbone(nn.Module):
    """ResNet-IR face embedder: [B, 3, 112, 112] in [-1, 1] → [B, 512] unit vectors.

    `Backbone(112, 50, 'ir_se', drop_ratio=0.6, affine=True)` is IR-SE50 (GUIDE's ID loss);
    `Backbone(112, 100, 'ir', drop_ratio=0.4, affine=False)` is CurricularFace IR-101 (ID metric).
    Only the 112x112 input size is supported: both released files use it.
    """

    def __init__(
        self, input_size: int, num_layers: int, mode: str = "ir", drop_ratio: float = 0.4, affine: bool = True
    ) -> None:
        super().__init__()
        if input_size != 112:
            raise ValueError(f"only input_size=112 is supported (got {input_size})")
        if num_layers not in _UNITS_PER_STAGE:
            raise ValueError(f"num_layers must be one of {sorted(_UNITS_PER_STAGE)} (got {num_layers})")
        units = {"ir": bottleneck_IR, "ir_se": bottleneck_IR_SE}
        if mode not in units:
            raise ValueError(f"mode must be 'ir' or 'ir_se' (got {mode!r})")
        # Registration order = state_dict order of the released files: input, output, then body.
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),            # 112 px / 2^4 stride-2 stages = 7
            nn.BatchNorm1d(512, affine=affine),
        )
        self.body = nn.Sequential(*_build_units(units[mode], _UNITS_PER_STAGE[num_layers]))

    def forward(self, x: Tensor) -> Tensor:
        feats = self.output_layer(self.body(self.input_layer(x)))  # [B, 512]
        return feats / feats.norm(p=2, dim=1, keepdim=True)


def ir_body_units(num_layers: int, mode: str, widths: tuple[int, ...] = _STAGE_DEPTHS) -> list[nn.Module]:
    """The `body.<i>` units of an IR / IR-SE net of `num_layers` (pSp's encoder reuses them).

    `widths` (stage depths; the input layer has widths[0]) narrows the net for CPU stand-ins; SE needs >= 16.
    """
    units = {"ir": bottleneck_IR, "ir_se": bottleneck_IR_SE}
    if num_layers not in _UNITS_PER_STAGE or mode not in units:
        raise ValueError(f"need num_layers in {sorted(_UNITS_PER_STAGE)} and mode 'ir' or 'ir_se' "
                         f"(got {num_layers}, {mode!r})")
    return _build_units(units[mode], _UNITS_PER_STAGE[num_layers], widths)


def _build_units(unit: type[bottleneck_IR], units_per_stage: tuple[int, ...],
                 widths: tuple[int, ...] = _STAGE_DEPTHS) -> list[nn.Module]:
    """Flatten the four stages into `body.<i>`: the first unit of a stage strides by 2."""
    modules: list[nn.Module] = []
    in_channel = widths[0]                      # the input layer is as wide as stage 1
    for depth, count in zip(widths, units_per_stage, strict=True):
        modules.append(unit(in_channel, depth, 2))
        modules.extend(unit(depth, depth, 1) for _ in range(count - 1))
        in_channel = depth
    return modules


def build_ir_se50() -> Backbone:
    """IR-SE50 exactly as GUIDE's IDLoss builds it (random weights)."""
    return Backbone(112, 50, "ir_se", drop_ratio=0.6, affine=True)


def build_ir101() -> Backbone:
    """CurricularFace IR-101 exactly as GUIDE's IDSimNet builds it (random weights)."""
    return Backbone(112, 100, "ir", drop_ratio=0.4, affine=False)


def load_ir_se50(path: Path | str) -> Backbone:
    """IR-SE50 with the weights of `model_ir_se50.pth`, in eval mode, frozen.

    Raises WeightsMissing if the file is absent, WeightsInvalid if it is not a plain state_dict
    with exactly the expected names and shapes (absent `num_batches_tracked` entries excepted).
    """
    return load_backbone_weights(build_ir_se50(), path, how_to_get=IR_SE50.how_to_get)


def load_curricularface(path: Path | str) -> Backbone:
    """CurricularFace IR-101 with the weights of `CurricularFace_Backbone.pth`, eval mode, frozen.

    Same contract as `load_ir_se50`.
    """
    return load_backbone_weights(build_ir101(), path, how_to_get=CURRICULARFACE.how_to_get)


def load_backbone_weights(model: Backbone, path: Path | str, *, how_to_get: str) -> Backbone:
    """Load a released state_dict into `model` strictly; returns `model` in eval mode, frozen."""
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(path, how_to_get)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise WeightsInvalid(f"{path}: not a tensors-only PyTorch state_dict ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsInvalid(f"{path}: expected a plain state_dict (name → tensor), got {type(state).__name__}")
    state = _fill_tolerated(model, state, path)
    model.load_state_dict(state, strict=True)
    log.debug("loaded %d tensors from %s", len(state), path)
    return model.eval().requires_grad_(False)


def _fill_tolerated(model: nn.Module, state: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Check names/shapes against `model`; fill only absent `num_batches_tracked` from the model."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    fatal_missing = [k for k in missing if not k.endswith(_TOLERATED_MISSING_SUFFIX)]
    problems = [
        (f"missing {len(fatal_missing)}", fatal_missing),
        (f"unexpected {len(unexpected)}", unexpected),
        (f"wrong shape {len(wrong_shape)}", wrong_shape),
    ]
    if any(keys for _, keys in problems):
        detail = "; ".join(f"{label}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                           for label, keys in problems if keys)
        raise WeightsInvalid(f"{path} does not match {type(model).__name__}: {detail}")
    filled = dict(state)
    for key in missing:                       # only num_batches_tracked can be left here
        filled[key] = expected[key].clone()
    return filled
