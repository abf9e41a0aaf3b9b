"""GuideConfig: every switch of the GUIDE unlearning loop, with the official defaults.

Defaults follow the released `unlearn.py` (KHU-AGI/GUIDE); see docs/design.md for the facts and
`guide_ray.config.variants` for the named rows of the paper's tables.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from guide_ray.config.base import StrictModel

EG3D_PIVOT = (0.0, 0.0, 0.2)            # EG3D train.py: rendering_kwargs['avg_camera_pivot']
GUIDE_OFFICIAL_PIVOT = (0.0, 0.0, 0.0)  # GUIDE reads the misspelt 'avg_cam_pivot' key and falls back to the origin


class LossWeights(StrictModel):
    """Weights of the three terms shared by the local and the adjacency losses."""

    lambda_l2: float = Field(1e-2, ge=0, description="MSE on the raw tri-planes")
    lambda_per: float = Field(1.0, ge=0, description="LPIPS on the super-resolved images")
    lambda_id: float = Field(1e-1, ge=0, description="1 - cos of identity embeddings")


class CameraConfig(StrictModel):
    """The one random camera drawn per step: yaw U(±yaw_range), fixed pitch, on a sphere about the origin."""

    yaw_range: float = Field(math.pi / 12, ge=0, description="yaw ~ U(-yaw_range, yaw_range), radians")
    pitch_offset: float = Field(-0.2, description="polar angle = pi/2 + pitch_offset, radians")
    radius: float = Field(2.7, gt=0)
    fov_deg: float = Field(18.837, gt=0, lt=180)
    look_at: Literal["eg3d", "guide-official"] | tuple[float, float, float] = Field(
        "eg3d", description="'eg3d' = (0, 0, 0.2); 'guide-official' = (0, 0, 0) as the released GUIDE code"
    )

    @property
    def look_at_point(self) -> tuple[float, float, float]:
        if self.look_at == "eg3d":
            return EG3D_PIVOT
        if self.look_at == "guide-official":
            return GUIDE_OFFICIAL_PIVOT
        return tuple(float(v) for v in self.look_at)  # type: ignore[return-value]


class SpeedConfig(StrictModel):
    """How a step is computed, never what it computes; each switch is guarded against fp32 in
    tests/guide/test_fast_options.py (tolerances there). The exact switches are on by default, and
    so is bf16 super-resolution where the hardware has bf16 (benchmarks/RESULTS.md: 1.15–1.66× the
    reference on the world preset, median 1.43× over seven runs, within 1 % of fp32); the other precision and
    compile trade-offs stay off."""

    target_inference_mode: bool = Field(
        True, description="render G_s's targets under torch.inference_mode (exact; no autograd bookkeeping)")
    autocast: Literal["auto", "off", "sr-bf16", "bf16"] = Field(
        "auto", description="bf16 autocast of the generators' super-resolution ('sr-bf16') or whole synthesis "
                            "('bf16'); losses stay fp32 (tolerances: docs/speed.md). 'auto' = 'sr-bf16' where the "
                            "device computes bf16 natively (CUDA with bf16, CPU with AVX512-BF16 or AMX), else "
                            "'off'; the resolved value is recorded with each result")
    tf32: bool = Field(False, description="TF32 matmuls and convolutions on CUDA (set by the caller; no effect on CPU)")
    channels_last: bool = Field(False, description="NHWC memory format for the generators and loss networks")
    compile: bool = Field(False, description="torch.compile G_u's synthesis for the run (first step compiles)")


MicroBatch = Annotated[int, Field(ge=1)] | Literal["auto"]


class GuideConfig(StrictModel):
    """One unlearning run. Validated at the edge; inside, passed as a frozen object."""

    target: Literal["extrapolated", "average"] = Field(
        "extrapolated", description="UFO target w_avg - d*unit(w_u - w_avg), or the baseline w_avg"
    )
    d: float = Field(30.0, ge=0, description="UFO extrapolation distance (Frobenius norm over W+)")
    loss_local: bool = Field(True, description="L_local between G_u(w_u) and G_s(w_t)")
    loss_adj: bool = Field(True, description="L_adj on N_a neighbours w + delta")
    loss_global: bool = Field(True, description="L_global: LPIPS on N_g random latents")
    n_adj: int = Field(2, ge=0, description="N_a, adjacency samples per step")
    alpha_max: float = Field(15.0, ge=0, description="alpha ~ U(0, alpha_max)")
    n_global: int = Field(2, ge=0, description="N_g, global-preservation samples per step")
    lambda_adj: float = Field(1.0, ge=0)
    lambda_global: float = Field(1.0, ge=0)
    local_weights: LossWeights = LossWeights()
    adj_weights: LossWeights = LossWeights()
    lr: float = Field(1e-4, gt=0, description="Adam learning rate on the raw (equalised-lr) weights")
    iterations: int = Field(1000, ge=1)
    noise_mode: Literal["random", "const", "none"] = Field(
        "random", description="backbone noise; the official loop uses 'random'"
    )
    camera: CameraConfig = CameraConfig()
    micro_batch: MicroBatch = Field(
        "auto", description="latents per forward/backward chunk, gradients accumulated over the step's "
                            "1 + N_a + N_g latents; 'auto' = the most that fit the device's free memory "
                            "(guide_ray/guide/memory.py); the chosen value is recorded with the result")
    grad_checkpoint: bool = Field(
        False, description="recompute the renderer's and the super-resolution's activations in backward "
                           "(less memory, more time; same loss and gradient)")
    speed: SpeedConfig = SpeedConfig()

    @model_validator(mode="after")
    def _some_loss(self) -> GuideConfig:
        if not (self.loss_local or self.loss_adj or self.loss_global):
            raise ValueError("at least one of loss_local, loss_adj, loss_global must be enabled")
        return self

    @property
    def batch_size(self) -> int:
        """Latents rendered per step: w_u (if local) + N_a neighbours + N_g random latents."""
        return int(self.loss_local) + (self.n_adj if self.loss_adj else 0) + (self.n_global if self.loss_global else 0)


def apply_overrides(base: GuideConfig, flat: dict[str, object]) -> GuideConfig:
    """Re-validate `base` with dotted-key overrides, e.g. {"d": 20, "camera.radius": 2.5}.

    Used for manifest rows, Tune trials and `--set`; `model_copy(update=...)` would skip
    validation, so the merged dict goes through `model_validate` again.
    """
    merged = base.model_dump()
    for key, value in flat.items():
        node = merged
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown override key {key!r}: {part!r} is not a section")
            node = node[part]
        node[leaf] = value
    return GuideConfig.model_validate(merged)
