"""One identity's verification: rebuild G_u from its artifact, run every attack, map the collateral.

`Verifier` is what a verify worker holds on its device, loaded once: G_s, the loss networks (the
re-inversion objective), the ID metric (the scores), the backend (cameras, inverters, probe
populations) and the match threshold, calibrated once per worker. `verify` returns the figures of
one row and writes its two images (best attack beside the source; collateral plot) into the
folder it is given. No Ray.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from guide_ray.backends import get_backend
from guide_ray.config.job import JobSpec, WorkItem
from guide_ray.config.verify import VerifySpec
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.inversion import Inverter
from guide_ray.metrics.identity import id_metric_for
from guide_ray.models import weights as weight_registry
from guide_ray.models.nets.factory import build_loss_nets
from guide_ray.utils.images import save_grid
from guide_ray.utils.seeding import derive_seed
from guide_ray.verify import attacks as A
from guide_ray.verify.calibration import far_threshold
from guide_ray.verify.collateral import Collateral, collateral
from guide_ray.verify.plots import save_collateral_plot

log = logging.getLogger(__name__)

TARGET_SIZE = 256            # photos reach the inverters at 256² (GOAE, pSp); renders are resized to it


@dataclass(frozen=True)
class VerifyOutcome:
    """The figures of one verification (the row's columns; see store.verify.VerifyRow)."""

    same_latent: float
    id_worst: float
    attack_worst: str
    attack_scores: dict[str, float]
    others_worst: float | None
    others_attack: str | None
    relearn_steps: int | None
    relearn_best: float
    threshold: float
    forgotten: bool
    collateral: Collateral
    images: dict[str, str]          # "attack", "collateral": absolute paths in the folder given
    stand_in: bool
    seconds: float


class Verifier:
    """Everything one verify worker holds, loaded once (see module docstring)."""

    def __init__(self, job: JobSpec, spec: VerifySpec, device: str) -> None:
        self.job, self.spec, self.device = job, spec, torch.device(device)
        self.weights_dir = weight_registry.resolve_weights_dir(job.model.weights_dir)
        self.backend = get_backend(job.model.backend)
        self.G_s = self.backend.load_generator(self.weights_dir, self.device)
        self.nets = build_loss_nets(job.model.backend, self.weights_dir, self.device)
        self.metric = id_metric_for(job.model.backend, self.weights_dir, self.device)
        self._threshold: float | None = spec.threshold

    @property
    def stand_in(self) -> bool:
        return self.backend.info.stand_in or self.nets.stand_in or bool(self.metric.stand_in)

    def threshold(self) -> float:
        """The user's threshold, or the FAR threshold over the backend's distinct identities (computed
        once), each pair scored as the worst case is: view mean or best pose of the sweep."""
        if self._threshold is None:
            spec, camera = self.spec, self.job.guide.camera
            latents = self.backend.calibration_latents(self.G_s, spec.calibration_identities, spec.seed, camera)
            scorer = A.Scorer(self.metric, self.backend.id_views(camera, spec.id_views))
            poses = A.pose_views(self.backend, camera, spec)
            emb = torch.stack([scorer.reference(self.G_s, w[None]) for w in latents])          # [N, V, D]
            emb_poses = torch.stack([scorer.reference(self.G_s, w[None], poses) for w in latents])   # [N, P, D]
            self._threshold = far_threshold(emb, spec.far, emb_poses)
            log.info("match threshold %.4f at FAR %g over %d identities", self._threshold, spec.far, len(latents))
        return self._threshold

    def verify(self, item: WorkItem, unlearned: Path, out_dir: Path) -> VerifyOutcome:
        """Attack the G_u stored at `unlearned` (the run's artifact) for `item`; images into `out_dir`."""
        start = time.perf_counter()
        threshold = self.threshold()
        state = torch.load(unlearned, map_location=self.device, weights_only=True)
        G_u = self.backend.load_unlearned(self.G_s, state).eval().requires_grad_(False)
        camera, spec = item.guide.camera, self.spec
        scorer = A.Scorer(self.metric, self.backend.id_views(camera, spec.id_views))
        w_u, target = self._source(item)
        ref = scorer.reference(self.G_s, w_u)
        found = self._attacks(item, G_u, w_u, target, scorer, ref)
        best = max(found, key=lambda a: a.score)
        c = A.photo_camera(self.backend, camera, self.device)
        relearned = A.relearn(G_u, best.w, self._at_output(target, w_u, c), c, self.nets, spec, (scorer, ref, threshold),
                              derive_seed(item.seed, "verify:relearn"))
        others = self._others(item, G_u, scorer)
        damage = self._collateral(item, G_u, w_u)
        out_dir.mkdir(parents=True, exist_ok=True)
        images = {"attack": str(self._attack_image(target, w_u, G_u, best, c, out_dir / "attack.png")),
                  "collateral": str(save_collateral_plot(damage, out_dir / "collateral.png", item.identity_id))}
        scores = {a.name: round(a.score, 6) for a in found}
        (out_dir / "attacks.json").write_text(json.dumps(scores, indent=2) + "\n")
        return VerifyOutcome(
            same_latent=scores_of(found, "same-latent"), id_worst=best.score, attack_worst=best.name,
            attack_scores=scores, others_worst=others[0] if others else None,
            others_attack=others[1] if others else None, relearn_steps=relearned.steps,
            relearn_best=relearned.best_score, threshold=threshold, forgotten=best.score <= threshold,
            collateral=damage, images=images, stand_in=self.stand_in, seconds=time.perf_counter() - start)

    def _source(self, item: WorkItem) -> tuple[Tensor, Tensor]:
        """w_u [1, L, C] exactly as the run made it, and the attacker's target [1, 3, 256, 256]:
        the photo, or (Random scenario) G_s's frontal render of w_u."""
        if item.scenario == "random":
            w_u = self.backend.source_latent(self.G_s, item.seed, item.guide.camera)
            c = A.photo_camera(self.backend, item.guide.camera, self.device)
            with torch.no_grad():
                image = A.render(self.G_s, w_u, c, torch.Generator(device=self.device).manual_seed(0))
            return w_u, F.interpolate(image, size=(TARGET_SIZE, TARGET_SIZE), mode="bilinear", align_corners=False)
        photo = self.backend.load_photo(Path(item.source)).to(self.device)
        return self._inverter(self.G_s, item.seed).invert(photo).detach(), photo

    def _inverter(self, G: UnlearnableGenerator, seed: int) -> Inverter:
        return self.backend.inverter(G, self.nets, self.job.model.inversion, self.weights_dir, self.device, seed)

    def _at_output(self, target: Tensor, w_u: Tensor, c: Tensor | None) -> Tensor:
        """The target at the generator's output size (what the objectives compare)."""
        with torch.no_grad():
            size = tuple(A.render(self.G_s, w_u, c).shape[-2:])
        return F.interpolate(target, size=size, mode="bilinear", align_corners=False, antialias=True)

    def _attacks(self, item: WorkItem, G_u: UnlearnableGenerator, w_u: Tensor, target: Tensor,
                 scorer: A.Scorer, ref: Tensor) -> list[A.Attack]:
        """Attacks 1-3 on the source: same latent, encoder re-inversion, optimisation in W / W+ from
        each start, and the pose sweep of w_u and of the best re-inverted latent."""
        spec, seed = self.spec, item.seed
        c = A.photo_camera(self.backend, item.guide.camera, self.device)
        found = [A.Attack("same-latent", scorer.score(ref, G_u, w_u), w_u)]
        w_enc = self._inverter(G_u, derive_seed(seed, "verify:encoder")).invert(target).detach()
        found.append(A.Attack("encoder", scorer.score(ref, G_u, w_enc), w_enc))
        goal = self._at_output(target, w_u, c)
        starts = {"w_avg": self.G_s.w_avg.expand(1, w_u.shape[1], -1), "encoder": w_enc,
                  "random": self.backend.source_latent(self.G_s, derive_seed(seed, "verify:random-start"),
                                                       item.guide.camera)}
        for space in spec.spaces:
            for name in spec.starts:
                w = A.reinvert(G_u, starts[name], goal, c, self.nets, spec, space,
                               derive_seed(seed, f"verify:{space}:{name}"))
                found.append(A.Attack(f"optim-{space}-{name}", scorer.score(ref, G_u, w), w))
        poses = A.pose_views(self.backend, item.guide.camera, spec)
        ref_poses = scorer.reference(self.G_s, w_u, poses)
        best_inverted = max(found[1:], key=lambda a: a.score)
        for label, attack in (("w_u", found[0]), (best_inverted.name, best_inverted)):
            score = float(scorer.per_view(ref_poses, G_u, attack.w, poses).max())
            found.append(A.Attack(f"pose-sweep:{label}", score, attack.w))
        return found

    def _others(self, item: WorkItem, G_u: UnlearnableGenerator, scorer: A.Scorer) -> tuple[float, str] | None:
        """Worst case over the identity's other photos: same latent and encoder re-inversion each."""
        worst: tuple[float, str] | None = None
        for k, path in enumerate(item.other_images):
            photo = self.backend.load_photo(Path(path)).to(self.device)
            w_ref = self._inverter(self.G_s, item.seed).invert(photo).detach()
            ref = scorer.reference(self.G_s, w_ref)
            w_enc = self._inverter(G_u, derive_seed(item.seed, f"verify:other:{k}")).invert(photo).detach()
            for name, w in (("same-latent", w_ref), ("encoder", w_enc)):
                score = scorer.score(ref, G_u, w)
                if worst is None or score > worst[0]:
                    worst = (score, f"{name}@other{k}")
        return worst

    def _collateral(self, item: WorkItem, G_u: UnlearnableGenerator, w_u: Tensor) -> Collateral:
        """Probe identities' drift against their distance from w_u, frontal view, fixed seeded probes."""
        camera = item.guide.camera
        probes = self.backend.probe_latents(self.G_s, self.spec.probes, self.spec.seed, camera)   # [N, L, C]
        front = A.Scorer(self.metric, self.backend.id_views(camera.model_copy(update={"yaw_range": 0.0}), 1))
        before = torch.cat([front.reference(self.G_s, w[None]) for w in probes])                   # [N, D]
        after = torch.cat([front.reference(G_u, w[None]) for w in probes])
        forgotten = front.reference(self.G_s, w_u)[0]
        return collateral(before, after, forgotten, probes, w_u)

    def _attack_image(self, target: Tensor, w_u: Tensor, G_u: UnlearnableGenerator, best: A.Attack,
                      c: Tensor | None, path: Path) -> Path:
        with torch.no_grad():
            renders = [A.render(G, w, c) for G, w in ((self.G_s, w_u), (G_u, w_u), (G_u, best.w))]
        size = tuple(renders[0].shape[-2:])
        source = F.interpolate(target, size=size, mode="bilinear", align_corners=False, antialias=True)
        labels = ["source", "G_s(w_u)", "G_u(w_u)", f"best: {best.name}"[:18]]
        return save_grid([source, *renders], path, labels=labels)


def scores_of(found: list[A.Attack], name: str) -> float:
    return next(a.score for a in found if a.name == name)
