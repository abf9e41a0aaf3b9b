"""One identity, end to end, in plain PyTorch: source latent → unlearning → metrics → artifacts.

`Pipeline` is what each engine worker holds (networks loaded once on its device); `guide-ray
unlearn` uses the same pieces for a single random identity. No Ray here.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from guide_ray.config.guide import CameraConfig, GuideConfig
from guide_ray.config.job import FID_METRICS, JobSpec, WorkItem
from guide_ray.guide.loop import StepHook, UnlearnResult, unlearn
from guide_ray.metrics import fid
from guide_ray.metrics.identity import id_similarity, render_views
from guide_ray.models import weights as W
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.triplane import TriPlaneGenerator
from guide_ray.models.nets.base import IdentityEmbedder, LossNets
from guide_ray.models.nets.factory import build_fid_extractor, build_id_metric, build_loss_nets
from guide_ray.utils.files import atomic_file
from guide_ray.utils.images import save_curve, save_grid
from guide_ray.utils.seeding import derive_seed, make_rng

log = logging.getLogger(__name__)

GRID_VIEWS = 5


@dataclass(frozen=True)
class ItemOutcome:
    metrics: dict[str, float | None]      # ID, ID_others, FID_pre, delta_FID_real (None = not computed)
    loss_first: float
    loss_last: float
    loss_min: float
    iterations: int
    artifacts: dict[str, str]             # "weights", "grid" (absolute paths under the run dir)
    stand_in: bool
    seconds: float


def load_generator(backend: str, weights_dir: Path, device: torch.device) -> TriPlaneGenerator:
    """The pretrained (frozen) generator G_s: the embedded tiny world, or the released EG3D."""
    if backend == "tiny":
        from guide_ray.models.eg3d.presets import build_generator
        G = build_generator("tiny")
    else:
        from guide_ray.models.eg3d.checkpoint import load_eg3d
        G = load_eg3d(W.resolve_file(W.EG3D_PKL.name, weights_dir))
    return G.to(device).eval().requires_grad_(False)


@torch.no_grad()
def random_source_latent(G_s: TriPlaneGenerator, seed: int) -> Tensor:
    """GUIDE's Random scenario: w_u = mapping(z, c_front), z ~ N(0, I) from `seed` (drawn on the CPU,
    so the identity does not depend on the device), psi = 1 → [1, L, C]."""
    z = torch.randn(1, G_s.z_dim, generator=make_rng(seed, "source"))
    device = G_s.backbone.mapping.w_avg.device
    return G_s.mapping(z.to(device), frontal_camera(1, device=device))


def unlearn_with_progress(G_s: TriPlaneGenerator, w_u: Tensor, cfg: GuideConfig, nets: LossNets, seed: int,
                          on_step: StepHook | None = None) -> tuple[TriPlaneGenerator, UnlearnResult]:
    """A fresh copy G_u of G_s unlearned towards cfg's target; randomness from `seed`."""
    G_u = copy.deepcopy(G_s)
    result = unlearn(G_u, G_s, w_u, cfg, nets, rng=make_rng(seed, "unlearn", w_u.device), on_step=on_step)
    return G_u, result


def write_artifacts(out_dir: Path, G_s: TriPlaneGenerator, G_u: TriPlaneGenerator, result: UnlearnResult,
                    camera: CameraConfig) -> dict[str, str]:
    """Unlearned synthesis weights (torch.load(weights_only=True)-loadable), a source / target /
    unlearned grid over a yaw sweep, and the loss curve (CSV + PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "unlearned_synthesis.pt"
    with atomic_file(weights) as tmp:
        torch.save({k: v.detach().cpu() for k, v in G_u.backbone.synthesis.state_dict().items()}, tmp)
    rows = [render_views(G_s, result.w_u, camera, GRID_VIEWS), render_views(G_s, result.w_t, camera, GRID_VIEWS),
            render_views(G_u, result.w_u, camera, GRID_VIEWS)]
    grid = save_grid(rows, out_dir / "grid.png", labels=["source G_s(w_u)", "target G_s(w_t)", "unlearned G_u(w_u)"])
    lines = ["step,total,local,adj,global"] + [
        f"{i},{p.total:.6g},{p.local:.6g},{p.adj:.6g},{p.global_:.6g}" for i, p in enumerate(result.losses)]
    (out_dir / "losses.csv").write_text("\n".join(lines) + "\n")
    curve = save_curve([p.total for p in result.losses], out_dir / "loss_curve.png", title="total loss")
    return {"weights": str(weights), "grid": str(grid), "losses": str(out_dir / "losses.csv"), "curve": str(curve)}


def write_json(path: Path, payload: dict) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


class Pipeline:
    """Everything one worker holds on its device, loaded once: G_s, loss nets, metric nets, inverter."""

    def __init__(self, job: JobSpec, device: str) -> None:
        """`device` is already resolved from job.device by the engine (engine.actors.pick_device)."""
        self.job = job
        self.device = torch.device(device)
        self.weights_dir = W.resolve_weights_dir(job.model.weights_dir)
        backend = job.model.backend
        W.require_backend_files(backend, self.weights_dir, metrics=job.metrics)   # fail fast, all names at once
        self.G_s = load_generator(backend, self.weights_dir, self.device)
        self.nets = build_loss_nets(backend, self.weights_dir, self.device)
        wants_id = bool({"ID", "ID_others"} & set(job.metrics))
        self.id_metric = build_id_metric(backend, self.weights_dir, self.device) if wants_id else None
        wants_fid = bool(set(FID_METRICS) & set(job.metrics))
        self.extractor = build_fid_extractor(backend, self.weights_dir, self.device) if wants_fid else None
        self.pre_stats: fid.FidStats | None = None
        self.real_stats: fid.FidStats | None = None
        self._encoder = None
        self.inversion_stand_in = False

    @property
    def stand_in(self) -> bool:
        nets = [self.nets, self.id_metric, self.extractor]
        return (self.job.model.backend == "tiny" or self.inversion_stand_in
                or any(getattr(n, "stand_in", False) for n in nets))

    def prepare(self, cache_dir: Path) -> None:
        """Pretrained-generator FID statistics: computed once per run, cached on disk by fingerprint."""
        if self.extractor is None or self.pre_stats is not None:
            return
        key = self._stats_key(fid.generator_fingerprint(self.G_s))
        self.pre_stats = fid.StatsCache(cache_dir).get_or_compute(key, lambda: self._fid_stats(self.G_s))
        if "delta_FID_real" in self.job.metrics:
            self.real_stats = fid.load_real_features(W.resolve_file(W.FFHQ_FEATS.name, self.weights_dir))

    def run(self, item: WorkItem, out_dir: Path) -> ItemOutcome:
        """Unlearn `item` and write its artifacts into `out_dir` (the engine gives each attempt its own)."""
        start = time.perf_counter()
        w_u = self.source_latent(item)
        G_u, result = unlearn_with_progress(self.G_s, w_u, item.guide, self.nets, item.seed,
                                            on_step=_log_every(item.identity_id, item.guide.iterations))
        metrics = self.measure(item, G_u, w_u)
        artifacts = write_artifacts(out_dir, self.G_s, G_u, result, item.guide.camera)
        totals = [p.total for p in result.losses] or [float("nan")]
        write_json(out_dir / "metrics.json", {"identity_id": item.identity_id, "metrics": metrics, "seed": item.seed,
                                              "stand_in": self.stand_in, "guide": item.guide.model_dump()})
        return ItemOutcome(metrics=metrics, loss_first=totals[0], loss_last=totals[-1], loss_min=min(totals),
                           iterations=result.steps, artifacts={k: artifacts[k] for k in ("weights", "grid")},
                           stand_in=self.stand_in, seconds=time.perf_counter() - start)

    def source_latent(self, item: WorkItem) -> Tensor:
        """w_u [1, L, C]: mapping of a seeded z (random scenario) or the inversion of the source photo."""
        if item.scenario == "random":
            return random_source_latent(self.G_s, item.seed)
        return self._invert(item.source, item.seed)

    def measure(self, item: WorkItem, G_u: TriPlaneGenerator, w_u: Tensor) -> dict[str, float | None]:
        metrics: dict[str, float | None] = {m: None for m in ("ID", "ID_others", "FID_pre", "delta_FID_real")}
        camera = item.guide.camera
        if "ID" in self.job.metrics:
            metrics["ID"] = id_similarity(self.G_s, G_u, w_u, self.id_metric, camera)
        if "ID_others" in self.job.metrics and item.other_images:
            sims = [id_similarity(self.G_s, G_u, self._invert(p, item.seed), self.id_metric, camera)
                    for p in item.other_images]
            metrics["ID_others"] = sum(sims) / len(sims)
        if self.extractor is not None:
            self.prepare(self.job.fid_cache_dir)
            unlearned = self._fid_stats(G_u)
            if "FID_pre" in self.job.metrics:
                metrics["FID_pre"] = fid.fid_pre(self.pre_stats, unlearned)
            if "delta_FID_real" in self.job.metrics:
                metrics["delta_FID_real"] = fid.delta_fid_real(self.real_stats, self.pre_stats, unlearned)
        return metrics

    def _fid_stats(self, G: TriPlaneGenerator) -> fid.FidStats:
        s = self.job.fid
        feats = fid.generator_features(G, s.num_samples, seed=s.seed, camera=self.job.guide.camera,
                                       extractor=self.extractor, batch_size=s.batch_size, device=self.device,
                                       noise_mode=self.job.guide.noise_mode)
        return fid.FidStats.from_features(feats)

    def _stats_key(self, generator_id: str) -> fid.StatsKey:
        s = self.job.fid
        return fid.StatsKey(generator=generator_id, extractor=self.extractor.name, n=s.num_samples, seed=s.seed,
                            camera=self.job.guide.camera, batch_size=s.batch_size, noise_mode=self.job.guide.noise_mode)

    def _invert(self, path: str, seed: int) -> Tensor:
        from guide_ray.guide.inversion import load_face_image
        image = load_face_image(Path(path)).to(self.device)
        inverter = self._inverter_for(seed)
        self.inversion_stand_in = inverter.stand_in
        return inverter.invert(image).detach()

    def _inverter_for(self, seed: int):
        """The job's inversion method (ModelSpec.inversion), seeded from the identity's seed."""
        from guide_ray.guide.inversion import GoaeInverter, ProjectionInverter
        spec = self.job.model.inversion
        if spec.resolved_method(self.job.model.backend) == "projection":
            return ProjectionInverter(self.G_s, self.nets.perceptual, steps=spec.projection_steps,
                                      lr=spec.projection_lr, seed=derive_seed(seed, "invert"))
        if self._encoder is None:  # loaded once per worker
            from guide_ray.models.goae.load import load_goae_encoder
            self._encoder = load_goae_encoder(W.resolve_file(W.GOAE_ENCODER.name, self.weights_dir), self.device)
        generator = make_rng(seed, "invert", self.device) if spec.goae_train_mode else None
        return GoaeInverter(self._encoder, self.G_s.backbone.mapping.w_avg, train_mode=spec.goae_train_mode,
                            generator=generator)


def _log_every(identity_id: str, iterations: int, every: int = 50) -> StepHook:
    def hook(step: int, parts) -> bool:
        if step % every == 0 or step == iterations - 1:
            log.info("%s: step %d/%d loss %.4f", identity_id, step + 1, iterations, parts.total)
        return False
    return hook
