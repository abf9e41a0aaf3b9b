"""Attacks against an unlearned generator G_u, and the one way every attack is scored.

Score of an attack = mean over the scoring views of cos(f(G_s(w_ref, v)), f(G_a(w_a, v))): the
identity as the original generator rendered it against what the attacker gets out of G_a (G_u,
or a re-learned copy) at the latent w_a it found. With w_a = w_ref and G_a = G_u this is exactly
the ID metric (guide_ray.metrics.identity), so "the same latent" is one attack among the others
and the worst case can never fall below it. The pose sweep scores each pose on its own and keeps
the best: an adversary picks the view that leaks. All randomness comes from generators the
caller seeds; no files, no Ray.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from guide_ray.backends import GeneratorBackend, Views
from guide_ray.config.guide import CameraConfig
from guide_ray.config.verify import Space, VerifySpec
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.metrics.identity import IdMetric
from guide_ray.models.nets.base import LossNets, identity_loss
from guide_ray.utils.images import dequantize, quantize_like_png


@dataclass(frozen=True)
class Attack:
    """One attack's outcome on G_u: its name, its score and the latent it found."""

    name: str
    score: float
    w: Tensor                       # [1, L, C]


class Scorer:
    """Embeds renders as the ID metric does (8-bit quantised, the metric's embedder)."""

    def __init__(self, metric: IdMetric, views: Views) -> None:
        self.metric, self.views = metric, views

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """images [B, 3, R, R] in [-1, 1] → [B, D]."""
        return self.metric(dequantize(quantize_like_png(images)))

    def reference(self, G_s: UnlearnableGenerator, w: Tensor, views: Views | None = None) -> Tensor:
        """The identity as G_s renders it: [V, D]."""
        return self.embed((views or self.views)(G_s, w))

    def per_view(self, ref: Tensor, G: UnlearnableGenerator, w: Tensor, views: Views | None = None) -> Tensor:
        """cos(ref[v], f(G(w, v))) for each view → [V], clamped to [-1, 1]: float rounding must not
        lift an identical render above a user threshold of 1."""
        return (ref * self.embed((views or self.views)(G, w))).sum(dim=1).clamp(-1.0, 1.0)

    def score(self, ref: Tensor, G: UnlearnableGenerator, w: Tensor) -> float:
        return float(self.per_view(ref, G, w).mean())


def pose_views(backend: GeneratorBackend, camera: CameraConfig, spec: VerifySpec, seed: int = 0) -> Views:
    """Renders over the whole pose range the backend supports: pose_yaws yaws in ±yaw_limit × the
    pitch offsets (a 2D backend: its one view). Constant noise, seeded renderer draws."""
    yaws = torch.linspace(-backend.yaw_limit, backend.yaw_limit, spec.pose_yaws) if backend.yaw_limit else torch.zeros(1)
    pitches = torch.tensor(spec.pose_pitch_offsets, dtype=torch.float32)
    grid_yaw, grid_pitch = (t.reshape(-1) for t in torch.meshgrid(yaws, pitches, indexing="ij"))   # [P]

    @torch.no_grad()
    def render(G: UnlearnableGenerator, w: Tensor) -> Tensor:
        c = backend.view_camera(camera, grid_yaw.to(w.device), grid_pitch.to(w.device))   # [P, 25] | None
        rng = torch.Generator(device=w.device).manual_seed(seed)
        if c is None:
            return G.synthesis(w, None, noise_mode="const", generator=rng)["image"]
        return torch.cat([G.synthesis(w, c[i:i + 1], noise_mode="const", generator=rng)["image"]
                          for i in range(len(c))])
    return render


def photo_camera(backend: GeneratorBackend, camera: CameraConfig, device: torch.device) -> Tensor | None:
    """The frontal camera (yaw 0, polar pi/2) the re-inversion and re-learning render from."""
    zero = torch.zeros(1, device=device)
    return backend.view_camera(camera, zero, zero)


def render(G: UnlearnableGenerator, w: Tensor, c: Tensor | None, rng: torch.Generator | None = None) -> Tensor:
    """One image [1, 3, R, R] of w [1, L, C] from camera c (constant noise)."""
    return G.synthesis(w, c, noise_mode="const", generator=rng)["image"]


def objective(image: Tensor, target: Tensor, nets: LossNets, spec: VerifySpec) -> Tensor:
    """The re-inversion loss: lambda_lpips · LPIPS + lambda_l2 · MSE + lambda_id · (1 - cos) → scalar."""
    loss = spec.lambda_lpips * nets.perceptual(image, target).mean() + spec.lambda_l2 * F.mse_loss(image, target)
    if spec.lambda_id:
        loss = loss + spec.lambda_id * identity_loss(nets.identity, image, target).mean()
    return loss


def reinvert(G: UnlearnableGenerator, w_start: Tensor, target: Tensor, c: Tensor | None, nets: LossNets,
             spec: VerifySpec, space: Space, seed: int) -> Tensor:
    """Adam on a latent for `spec.attack_steps` steps so that G renders `target` [1, 3, R, R] from c.

    space "W": one code [1, 1, C] repeated over the L rows (started from the rows' mean);
    "W+": all L rows free. G is only read (gradients w.r.t. the code alone). → w [1, L, C].
    """
    L = w_start.shape[1]
    code = (w_start.mean(dim=1, keepdim=True) if space == "W" else w_start).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([code], lr=spec.attack_lr)
    rng = torch.Generator(device=w_start.device).manual_seed(seed)
    for _ in range(spec.attack_steps):
        loss = objective(render(G, code.expand(1, L, -1), c, rng), target, nets, spec)
        code.grad = torch.autograd.grad(loss, [code])[0]
        opt.step()
    return code.detach().expand(1, L, -1).clone()


@dataclass(frozen=True)
class Relearned:
    """Steps of fine-tuning after which the identity matched (None: not within the budget), and the
    highest score seen at a check."""

    steps: int | None
    best_score: float


def relearn(G_u: UnlearnableGenerator, pivot: Tensor, target: Tensor, c: Tensor | None, nets: LossNets,
            spec: VerifySpec, check: tuple[Scorer, Tensor, float], seed: int) -> Relearned:
    """PTI-style re-learning: fine-tune a copy of G_u's synthesis parameters so that G(pivot) renders
    `target` (LPIPS + L2), checking every `relearn_check_every` steps (and before the first) whether
    the score against the reference `check = (scorer, ref, threshold)` exceeds the threshold."""
    scorer, ref, threshold = check
    G_r = copy.deepcopy(G_u)
    params = G_r.synthesis_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=spec.relearn_lr)
    rng = torch.Generator(device=pivot.device).manual_seed(seed)
    best = float("-inf")
    for step in range(spec.relearn_steps + 1):
        if step % spec.relearn_check_every == 0 or step == spec.relearn_steps:
            score = scorer.score(ref, G_r, pivot)
            best = max(best, score)
            if score > threshold:
                return Relearned(step, best)
        if step == spec.relearn_steps:
            break
        image = render(G_r, pivot, c, rng)
        loss = spec.lambda_lpips * nets.perceptual(image, target).mean() + spec.lambda_l2 * F.mse_loss(image, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return Relearned(None, best)
