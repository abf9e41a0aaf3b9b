"""One identity, end to end, in plain PyTorch: source latent → unlearning → metrics → artifacts.

`Pipeline` is what each engine worker holds (networks loaded once on its device); `guide-ray
unlearn` runs one WorkItem through the same `Pipeline.run`, so both write one format
(artifacts/<id>/metrics.json, weights, grid, losses). Which metrics exist and what each needs
comes from the metric registry (guide_ray.config.metrics); everything that depends on the
generator (G_s, source latents, photo inversion, the views of the ID metric and the FID renders,
the saved tensors) comes from the backend (guide_ray.backends). No Ray here.
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

from guide_ray import __version__
from guide_ray.backends import GeneratorBackend, get_backend
from guide_ray.config import metrics as registry
from guide_ray.config.base import fingerprint
from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.errors import ConfigError
from guide_ray.guide.fast import cuda_flags
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.loop import StepHook, UnlearnResult, unlearn
from guide_ray.metrics import drift, fid
from guide_ray.metrics.identity import N_VIEWS, BeforeCache, id_metric_for, id_score
from guide_ray.metrics.stats import FidStats, fid_plan, load_real_stats
from guide_ray.models import weights as weight_registry
from guide_ray.models.nets.base import LossNets
from guide_ray.models.nets.factory import build_fid_extractor, build_loss_nets
from guide_ray.store.latents import LatentCache
from guide_ray.utils.files import atomic_file, file_sha256
from guide_ray.utils.images import save_curve, save_grid
from guide_ray.utils.seeding import derive_seed, make_rng

log = logging.getLogger(__name__)

GRID_VIEWS = 5
STAGES = ("source", "unlearning", "metrics", "artifacts")   # Pipeline.run's parts, timed into metrics.json


@dataclass(frozen=True)
class ItemOutcome:
    metrics: dict[str, float | None]      # registry name → value (None = not computed)
    loss_first: float
    loss_last: float
    loss_min: float
    iterations: int
    artifacts: dict[str, str]             # "weights", "grid" (absolute paths under the run dir)
    stand_in: bool
    seconds: float
    id_views_unaligned: int | None = None  # renders without an MTCNN face (None: no aligned ID metric ran)
    micro_batch: dict[str, object] | None = None   # the chunk size the steps used (guide.memory.MicroBatchChoice)
    autocast: str | None = None                    # the precision the steps used (speed.autocast resolved)
    stage_seconds: dict[str, float] | None = None  # source, unlearning, metrics, artifacts (benchmarks read it)


def unlearn_copy(G_s: UnlearnableGenerator, w_u: Tensor, cfg: GuideConfig, nets: LossNets, seed: int,
                 on_step: StepHook | None = None, memory_share: float = 1.0) -> tuple[UnlearnableGenerator, UnlearnResult]:
    """A fresh copy G_u of G_s unlearned towards cfg's target; randomness from `seed`."""
    G_u = copy.deepcopy(G_s)
    result = unlearn(G_u, G_s, w_u, cfg, nets, rng=make_rng(seed, "unlearn", w_u.device), on_step=on_step,
                     memory_share=memory_share)
    return G_u, result


def write_artifacts(out_dir: Path, backend: GeneratorBackend, G_s: UnlearnableGenerator,
                    G_u: UnlearnableGenerator, result: UnlearnResult, guide: GuideConfig) -> dict[str, str]:
    """The backend's unlearned tensors (torch.load(weights_only=True)-loadable), a source / target /
    unlearned grid over the backend's views (EG3D: a yaw sweep), and the loss curve (CSV + PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "unlearned_synthesis.pt"
    with atomic_file(weights) as tmp:
        torch.save(backend.unlearned_state(G_u), tmp)
    views = backend.id_views(guide.camera, GRID_VIEWS)
    rows = [views(G_s, result.w_u), views(G_s, result.w_t), views(G_u, result.w_u)]
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

    def __init__(self, job: JobSpec, device: str, memory_share: float = 1.0) -> None:
        """`device` is already resolved from job.device (guide_ray.utils.device.pick_device); `memory_share`:
        the share of the device's free memory this pipeline plans `micro_batch: auto` with (the engine
        gives each actor its share; a lone `guide-ray unlearn` has the device to itself)."""
        self.job = job
        self.memory_share = memory_share
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested, but CUDA is not available on this machine")
        self.weights_dir = weight_registry.resolve_weights_dir(job.model.weights_dir)
        backend = job.model.backend
        self.fid_plan = fid_plan(job.fid, job.metrics)
        weight_registry.require_backend_files(          # fail fast, all names at once
            backend, self.weights_dir, metrics=job.metrics, fid_extractors=self.fid_plan.kinds,
            guide_real_features=self.fid_plan.guide_real_features)
        self.backend = get_backend(backend)
        self.G_s = self.backend.load_generator(self.weights_dir, self.device)
        self.nets = build_loss_nets(backend, self.weights_dir, self.device)
        wants_id = bool(registry.needing("id_network", job.metrics))
        self.id_metric = id_metric_for(backend, self.weights_dir, self.device) if wants_id else None
        self.extractors = {kind: build_fid_extractor(backend, self.weights_dir, self.device, kind)
                           for kind in self.fid_plan.kinds}
        self.real_stats: FidStats | None = None
        self.before = BeforeCache()                            # ID's G_s renders, shared by an identity's rows
        self._pre_stats: dict[str, fid.FidStats] = {}          # StatsKey fingerprint → pretrained stats
        self._pre_probes: dict[str, list[Tensor]] = {}          # (camera, noise mode) fingerprint → G_s probes
        self.inversion_stand_in = False
        self._generator_id: str | None = None                  # G_s's weights fingerprint, for the latent cache

    @property
    def stand_in(self) -> bool:
        nets = [self.nets, self.id_metric, *self.extractors.values()]
        return (self.backend.info.stand_in or self.inversion_stand_in
                or any(getattr(n, "stand_in", False) for n in nets))

    def prepare(self, cache_dir: Path) -> None:
        """Pretrained-generator FID statistics for the job-level camera and noise (most identities use
        them), cached on disk by fingerprint, and the real statistics (the backend's own ground truth
        where it has one, else the job's or GUIDE's file)."""
        if not self.extractors:
            return
        self._pretrained_stats(self.job.guide)
        if self.fid_plan.real is not None and self.real_stats is None:
            if self.job.fid.real_stats is None:
                self.real_stats = self.backend.real_stats(self.G_s, self.extractors[self.fid_plan.real], self.job.fid,
                                                          self.job.guide.camera, self.device, cache_dir)
            if self.real_stats is None:
                path = self.job.fid.real_stats or weight_registry.resolve_file(
                    weight_registry.FFHQ_FEATS.name, self.weights_dir)
                self.real_stats = load_real_stats(path)

    def run(self, item: WorkItem, out_dir: Path, on_step: StepHook | None = None) -> ItemOutcome:
        """Unlearn `item` and write its artifacts into `out_dir` (the engine gives each attempt its own).

        `on_step` sees every step (the CLI's progress bar); by default progress is logged every 50 steps.
        """
        start = time.perf_counter()
        marks = [start]
        w_u = self.source_latent(item)
        marks.append(time.perf_counter())
        with cuda_flags(item.guide.speed):                       # TF32 is a process flag: set around the loop only
            G_u, result = unlearn_copy(self.G_s, w_u, item.guide, self.nets, item.seed,
                                       on_step=on_step or _log_every(item.identity_id, item.guide.iterations),
                                       memory_share=self.memory_share)
        marks.append(time.perf_counter())
        metrics, unaligned = self.measure(item, G_u, w_u)
        marks.append(time.perf_counter())
        artifacts = write_artifacts(out_dir, self.backend, self.G_s, G_u, result, item.guide)
        marks.append(time.perf_counter())
        totals = [p.total for p in result.losses] or [float("nan")]
        stages = {name: round(b - a, 3) for name, a, b in zip(STAGES, marks, marks[1:])}
        outcome = ItemOutcome(metrics=metrics, loss_first=totals[0], loss_last=totals[-1], loss_min=min(totals),
                              iterations=result.steps, artifacts={k: artifacts[k] for k in ("weights", "grid")},
                              stand_in=self.stand_in, seconds=time.perf_counter() - start,
                              id_views_unaligned=unaligned, micro_batch=result.micro_batch.record(),
                              autocast=result.autocast, stage_seconds=stages)
        write_json(out_dir / "metrics.json", self._metrics_record(item, outcome, artifacts))
        return outcome

    def source_latent(self, item: WorkItem) -> Tensor:
        """w_u [1, L, C]: mapping of a seeded z (random scenario) or the inversion of the source photo."""
        if item.scenario == "random":
            return self.backend.source_latent(self.G_s, item.seed, item.guide.camera)
        return self._invert(item.source, item.seed)

    def measure(self, item: WorkItem, G_u: UnlearnableGenerator,
                w_u: Tensor) -> tuple[dict[str, float | None], int | None]:
        """The job's metrics (registry names → value; None where not applicable) and the count of
        ID renders that MTCNN could not align (None when no aligned ID metric ran)."""
        wanted = set(self.job.metrics)
        metrics: dict[str, float | None] = dict.fromkeys(registry.METRIC_NAMES)
        views = self.backend.id_views(item.guide.camera, N_VIEWS)
        views_key = f"{fingerprint(item.guide.camera)}:{N_VIEWS}"

        def score(w: Tensor):
            before = self.before.get(self.G_s, w, self.id_metric, views, views_key)
            return id_score(self.G_s, G_u, w, self.id_metric, views, before=before)

        scores = []
        if registry.ID.name in wanted:
            scores.append(score(w_u))
            metrics[registry.ID.name] = scores[-1].similarity
        if registry.ID_OTHERS.name in wanted and item.other_images:
            others = [score(self._invert(p, item.seed)) for p in item.other_images]
            metrics[registry.ID_OTHERS.name] = sum(s.similarity for s in others) / len(others)
            scores += others
        if self.extractors:
            metrics |= self._fid_metrics(item.guide, G_u, wanted)
        if registry.LPIPS_DRIFT.name in wanted:
            metrics[registry.LPIPS_DRIFT.name] = self._lpips_drift(item.guide, G_u)
        counts = [s.unaligned for s in scores if s.unaligned is not None]
        return metrics, (sum(counts) if counts else None)

    def _fid_metrics(self, guide: GuideConfig, G_u: UnlearnableGenerator, wanted: set[str]) -> dict[str, float]:
        """FID_pre and ΔFID_real with the identity's effective camera and noise; one extractor per distance."""
        self.prepare(self.job.fid_cache_dir)
        pre = self._pretrained_stats(guide)
        unlearned = self._stats(G_u, guide, "unlearned")
        plan, out = self.fid_plan, {}
        if registry.FID_PRE.name in wanted:
            name = self.extractors[plan.pre].name
            out[registry.FID_PRE.name] = fid.fid_pre(pre[name], unlearned[name])
        if registry.DELTA_FID_REAL.name in wanted:
            name = self.extractors[plan.real].name
            out[registry.DELTA_FID_REAL.name] = fid.delta_fid_real(self.real_stats, pre[name], unlearned[name])
        return out

    def _lpips_drift(self, guide: GuideConfig, G_u: UnlearnableGenerator) -> float:
        """LPIPS_drift with the identity's effective camera and noise mode, by the loss's perceptual
        network; G_s's probe renders are kept in memory for the identities that share them."""
        spec, render = self.job.lpips_drift, self.backend.fid_render(guide.camera)
        key = fingerprint({"camera": guide.camera.model_dump(mode="json"), "noise_mode": guide.noise_mode})
        if key not in self._pre_probes:
            self._pre_probes[key] = drift.probe_renders(self.G_s, spec, guide.camera, render, self.device,
                                                        guide.noise_mode)
        after = drift.probe_renders(G_u, spec, guide.camera, render, self.device, guide.noise_mode)
        return drift.lpips_drift(self._pre_probes[key], after, self.nets.perceptual)

    def _pretrained_stats(self, guide: GuideConfig) -> dict[str, FidStats]:
        """G_s's statistics per extractor name for `guide`'s camera and noise: memory, then disk, then render."""
        generator = fid.generator_fingerprint(self.G_s)
        keys = {e.name: self._stats_key(generator, e.name, guide) for e in self.extractors.values()}
        cache = fid.StatsCache(self.job.fid_cache_dir)
        missing = [n for n, k in keys.items() if fingerprint(k) not in self._pre_stats and cache.get(k) is None]
        fresh = self._stats(self.G_s, guide, "pretrained") if missing else {}
        for name, key in keys.items():
            stats = cache.get_or_compute(key, lambda name=name: fresh[name])
            self._pre_stats[fingerprint(key)] = stats
        return {name: self._pre_stats[fingerprint(key)] for name, key in keys.items()}

    def _stats(self, G: UnlearnableGenerator, guide: GuideConfig, role: fid.Role) -> dict[str, FidStats]:
        s = self.job.fid
        return fid.generator_stats(G, s.num_samples, seed=s.seed, role=role, camera=guide.camera,
                                   extractors=list(self.extractors.values()),
                                   render=self.backend.fid_render(guide.camera), batch_size=s.batch_size,
                                   device=self.device, noise_mode=guide.noise_mode)

    def _stats_key(self, generator_id: str, extractor: str, guide: GuideConfig) -> fid.StatsKey:
        s = self.job.fid
        return fid.StatsKey(generator=generator_id, extractor=extractor, n=s.num_samples, seed=s.seed,
                            role="pretrained", camera=guide.camera, batch_size=s.batch_size,
                            noise_mode=guide.noise_mode)

    def _metrics_record(self, item: WorkItem, outcome: ItemOutcome, artifacts: dict[str, str]) -> dict:
        """metrics.json: everything needed to read and replay one identity's result."""
        networks = {n.name: n.stand_in for n in (self.nets.perceptual, self.nets.identity, self.id_metric,
                                                 *self.extractors.values()) if n is not None}
        return {
            "identity_id": item.identity_id, "scenario": item.scenario, "variant": item.variant, "seed": item.seed,
            "metrics": outcome.metrics, "id_views_unaligned": outcome.id_views_unaligned,
            "losses": {"first": outcome.loss_first, "last": outcome.loss_last, "min": outcome.loss_min},
            "iterations": outcome.iterations, "seconds": round(outcome.seconds, 2), "device": str(self.device),
            "micro_batch": outcome.micro_batch, "autocast": outcome.autocast, "stage_seconds": outcome.stage_seconds,
            "backend": self.job.model.backend, "guide": item.guide.model_dump(mode="json"),
            "fid": self.job.fid.model_dump(mode="json"),
            "lpips_drift": (self.job.lpips_drift.model_dump(mode="json")
                            if registry.LPIPS_DRIFT.name in self.job.metrics else None),
            "seeds": {"seed": item.seed, "source": derive_seed(item.seed, "source"),
                      "unlearn": derive_seed(item.seed, "unlearn")},
            "networks": networks, "stand_in": outcome.stand_in, "artifacts": artifacts, "version": __version__,
        }

    def _invert(self, path: str, seed: int) -> Tensor:
        """w [1, L, C] of a photo, by the job's inversion method (ModelSpec.inversion) for this backend;
        cached per run (RUN/cache/latents), as every variant of an identity inverts the same photo."""
        image = self.backend.load_photo(Path(path))            # BadImage naming the file, before any work
        inverter = self.backend.inverter(self.G_s, self.nets, self.job.model.inversion, self.weights_dir,
                                         self.device, seed)
        self.inversion_stand_in = inverter.stand_in
        if self._generator_id is None:
            self._generator_id = fid.generator_fingerprint(self.G_s)
        key = {"photo": file_sha256(path), "generator": self._generator_id, "backend": self.job.model.backend,
               "inversion": self.job.model.inversion.model_dump(mode="json"), "seed": seed,
               "device": self.device.type}
        compute = lambda: inverter.invert(image.to(self.device))  # noqa: E731
        return LatentCache(self.job.fid_cache_dir / "latents").get_or_compute(key, compute).to(self.device)


def _log_every(identity_id: str, iterations: int, every: int = 50) -> StepHook:
    def hook(step: int, parts) -> bool:
        if step % every == 0 or step == iterations - 1:
            log.info("%s: step %d/%d loss %.4f", identity_id, step + 1, iterations, parts.total)
        return False
    return hook
