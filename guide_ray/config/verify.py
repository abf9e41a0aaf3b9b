"""VerifySpec: the settings of `guide-ray verify` (the attack suite and the collateral map).

A job may carry one under `verify:` (then `guide-ray run` verifies every identity after
unlearning); `guide-ray verify RUN` reads it from the run's resolved job, or uses the defaults,
with `--threshold` on top. Every setting that changes a number is part of the verify key, so a
row computed under other settings is never taken for this one. No torch, no ray.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from guide_ray.config.base import StrictModel

# How a calibration pair of strangers is scored (guide_ray.verify.calibration.impostor_scores); part
# of every verify_key, so rows calibrated another way are never taken for done.
CALIBRATION_STATISTIC = "max(view-mean, best-pose)"

Start = Literal["w_avg", "encoder", "random"]
Space = Literal["W", "W+"]


class VerifySpec(StrictModel):
    """Attacks, threshold and collateral probes of one verification (defaults sized for a GPU)."""

    threshold: float | None = Field(
        None, ge=-1, le=1, description="match threshold on the ID metric's cosine; None = calibrate it at `far` on "
        "the backend's population of distinct identities (only backends that have one; real networks need a value)")
    far: float = Field(1e-3, gt=0, lt=0.5, description="false-accept rate the calibrated threshold allows on "
                       "different-identity pairs")
    calibration_identities: int = Field(64, ge=2, le=4096, description="distinct identities rendered to calibrate "
                                        "the threshold (n(n-1)/2 pairs must reach 1/far)")
    seed: int = Field(0, ge=0, description="seed of the probe population, calibration identities and random starts")
    id_views: int = Field(11, ge=1, description="views each attack is scored on (GUIDE's ID sweep has 11)")
    starts: tuple[Start, ...] = Field(("w_avg", "encoder", "random"), min_length=1,
                                      description="starting points of the optimisation re-inversion")
    spaces: tuple[Space, ...] = Field(("W", "W+"), min_length=1, description="latent spaces it optimises in")
    attack_steps: int = Field(100, ge=0, description="Adam steps per optimisation start (the fixed budget in the row)")
    attack_lr: float = Field(0.01, gt=0, description="learning rate of the optimisation re-inversion")
    lambda_lpips: float = Field(1.0, ge=0, description="weight of the perceptual term of the re-inversion objective")
    lambda_l2: float = Field(1.0, ge=0, description="weight of the pixel L2 term")
    lambda_id: float = Field(0.1, ge=0, description="weight of the identity term (1 - cosine, loss network)")
    pose_yaws: int = Field(9, ge=1, description="yaws of the pose sweep, spread over the backend's whole yaw range")
    pose_pitch_offsets: tuple[float, ...] = Field((-0.4, -0.2, 0.0, 0.2), min_length=1,
                                                  description="polar-angle offsets (radians from pi/2) of the sweep")
    relearn_steps: int = Field(200, ge=0, le=500, description="PTI-style fine-tuning budget of the re-learning attack")
    relearn_lr: float = Field(3e-4, gt=0, description="learning rate of the re-learning attack (PTI's)")
    relearn_check_every: int = Field(10, ge=1, description="steps between two ID checks while re-learning")
    probes: int = Field(32, ge=3, le=4096, description="probe identities of the collateral map (seeded latents)")

    @model_validator(mode="after")
    def _enough_pairs(self) -> VerifySpec:
        pairs = self.calibration_identities * (self.calibration_identities - 1) // 2
        if self.threshold is None and pairs * self.far < 1:
            raise ValueError(f"calibration_identities={self.calibration_identities} gives {pairs} pairs, fewer than "
                             f"1/far = {1 / self.far:.0f}; raise it or give a threshold")
        return self

    @property
    def threshold_source(self) -> str:
        """'user', or 'far=<far> over <n> identities, <pair statistic>' (the row's evidence for its threshold)."""
        if self.threshold is not None:
            return "user"
        return f"far={self.far:g} over {self.calibration_identities} identities, {CALIBRATION_STATISTIC}"
