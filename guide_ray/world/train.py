"""`guide-ray world train`: every network of the world from fixed seeds, resumable, in stages.

Stages run in order (id_loss, generator_3d, generator, id_metric: the generator needs only
id_loss, so its result can be looked at before id_metric trains) and each ends in a plain
state_dict file in the output folder:
  id_loss, id_metric  the identity network twice (different init and batch seeds), CosFace over
                      `num_identities` in-domain identities rendered under random camera, light and
                      expression;
  generator_3d        the `world` TriPlaneGenerator's backbone and decoder taught the heads in 3D
                      (world/supervision.py: occupancy and colour at points along the renderer's
                      rays; no volume rendering, so a step is ~8x cheaper than an image step);
  generator           from there, distilled from the renderer's images: z ↦ identity by the fixed
                      map, random camera, canonical light; L2 on the 128² image and (× raw_weight)
                      the 32² raw image, `perceptual_weight` × the id_loss trunk distance, and the
                      3D losses kept on.
generator_3d.pt is an intermediate: it is not in the manifest and not shipped.
The LPIPS and FID features are the id_loss and id_metric trunks (guide_ray.world.idnet), so they
need no stage of their own. Step k of a stage draws its data from derive_seed(seed, "<stage>:k"),
so a resumed run replays exactly what an uninterrupted one does. Checkpoints (model, head,
optimiser, step, config) are written atomically every `checkpoint_every` steps; a finished stage
leaves its final file and is skipped on rerun. `manifest.json` pins the sha256 of each final file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from tqdm import tqdm

from guide_ray.config.base import StrictModel
from guide_ray.errors import ConfigError
from guide_ray.utils.files import atomic_file, file_sha256
from guide_ray.utils.seeding import make_rng
from guide_ray.world.generator import WORLD, build_world_generator, generate, set_w_avg
from guide_ray.world.idnet import CosFaceHead, WorldIdentityNet, perceptual_distance
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.world.nuisance import canonical_nuisance, sample_cameras, sample_nuisance
from guide_ray.world.population import PARAM_NAMES, Z_MAP_SEED, sample_identities, z_to_identity
from guide_ray.world.renderer import render
from guide_ray.world.supervision import point_losses

STAGES = ("id_loss", "generator_3d", "generator", "id_metric")  # the generator needs only id_loss
FILES = {"id_loss": "id_loss.pt", "id_metric": "id_metric.pt", "generator_3d": "generator_3d.pt",
         "generator": "generator.pt"}
SHIPPED = ("id_loss", "generator", "id_metric")   # what the backend loads; the manifest pins these
CONFIG_FILE, MANIFEST_FILE, CHECKPOINT_DIR = "world.json", "manifest.json", "checkpoints"


class StageConfig(StrictModel):
    steps: int = Field(ge=1)
    batch: int = Field(ge=2)
    lr: float = Field(gt=0)
    seed: int
    betas: tuple[float, float] = (0.9, 0.999)


class WorldTrainConfig(StrictModel):
    """Defaults are the shipped world; tests shrink steps and batches."""

    population_seed: int = 9_000_000
    num_identities: int = Field(default=1000, ge=2)
    id_resolution: int = Field(default=64, ge=16)
    perceptual_weight: float = Field(default=1.0, ge=0)
    raw_weight: float = Field(default=4.0, ge=0)
    point_rays: int = Field(default=2048, ge=1)
    colour_weight: float = Field(default=10.0, ge=0)
    checkpoint_every: int = Field(default=100, ge=1)
    id_loss: StageConfig = StageConfig(steps=2000, batch=48, lr=2e-3, seed=9_000_100)
    id_metric: StageConfig = StageConfig(steps=2000, batch=48, lr=2e-3, seed=9_000_200)
    generator_3d: StageConfig = StageConfig(steps=4000, batch=4, lr=1e-2, seed=9_000_300, betas=(0.9, 0.99))
    generator: StageConfig = StageConfig(steps=3000, batch=4, lr=2e-3, seed=9_000_400, betas=(0.9, 0.99))


def training_identities(cfg: WorldTrainConfig) -> torch.Tensor:
    """The identity table [num_identities, P] both identity networks are trained on."""
    return sample_identities(cfg.num_identities, make_rng(cfg.population_seed, "train_ids"))


def _optimiser_step(optim: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One Adam update on `loss`; the loss as a float for the progress bar."""
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    return float(loss.detach())


def _seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class _IdentityStage:
    """CosFace training of one identity network on renders of the training identities."""

    def __init__(self, name: str, cfg: WorldTrainConfig) -> None:
        self.name, self.cfg, self.stage = name, cfg, getattr(cfg, name)
        self.table = training_identities(cfg)
        self.net = _seeded(self.stage.seed, WorldIdentityNet).train()
        self.head = _seeded(self.stage.seed + 1, lambda: CosFaceHead(cfg.num_identities))
        params = [*self.net.parameters(), *self.head.parameters()]
        self.optim = torch.optim.Adam(params, lr=self.stage.lr, betas=self.stage.betas)
        self.modules = {"model": self.net, "head": self.head}

    def step(self, k: int) -> float:
        rng = make_rng(self.stage.seed, f"{self.name}:{k}")
        b = self.stage.batch
        labels = torch.randint(self.cfg.num_identities, (b,), generator=rng)
        with torch.no_grad():
            images = render(self.table[labels], sample_cameras(b, rng), sample_nuisance(b, rng),
                            self.cfg.id_resolution, supersample=1)
        return _optimiser_step(self.optim, F.cross_entropy(self.head(self.net(images), labels), labels))

    def final_state(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()


class _Generator3DStage:
    """The `world` generator's tri-planes and decoder taught the heads by 3D point supervision."""

    name = "generator_3d"

    def __init__(self, cfg: WorldTrainConfig) -> None:
        self.cfg, self.stage = cfg, getattr(cfg, self.name)
        self.G = build_world_generator(cfg.generator_3d.seed).train().requires_grad_(True)
        self.optim = torch.optim.Adam(self.G.parameters(), lr=self.stage.lr, betas=self.stage.betas)
        self.modules = {"model": self.G}

    def batch(self, k: int) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
        rng = make_rng(self.stage.seed, f"{self.name}:{k}")
        z = torch.randn(self.stage.batch, self.G.z_dim, generator=rng)
        return rng, z, sample_cameras(self.stage.batch, rng)

    def points(self, planes: torch.Tensor, z: torch.Tensor, cams: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        occupancy, colour = point_losses(self.G, planes, z_to_identity(z), cams, canonical_nuisance(z.shape[0]),
                                         self.cfg.point_rays, rng)
        return occupancy + self.cfg.colour_weight * colour

    def step(self, k: int) -> float:
        rng, z, cams = self.batch(k)
        planes = self.G.backbone.synthesis(self.G.mapping(z, frontal_camera(z.shape[0])), noise_mode="const")
        return _optimiser_step(self.optim, self.points(planes, z, cams, rng))

    def final_state(self) -> dict[str, torch.Tensor]:
        return self.G.state_dict()


class _GeneratorStage(_Generator3DStage):
    """Image distillation of the renderer into the `world` generator, from the 3D stage's result."""

    name = "generator"

    def __init__(self, cfg: WorldTrainConfig, id_loss_state: dict[str, torch.Tensor],
                 generator_3d_state: dict[str, torch.Tensor]) -> None:
        super().__init__(cfg)
        self.G.load_state_dict(generator_3d_state)
        self.idnet = WorldIdentityNet()
        self.idnet.load_state_dict(id_loss_state)
        self.idnet.eval().requires_grad_(False)

    def step(self, k: int) -> float:
        rng, z, cams = self.batch(k)
        with torch.no_grad():
            target = render(z_to_identity(z), cams, canonical_nuisance(z.shape[0]), self.G.img_resolution,
                            supersample=1)
            target_raw = F.avg_pool2d(target, self.G.img_resolution // self.G.neural_rendering_resolution)
        out = generate(self.G, z, cams, generator=rng)
        loss = (F.mse_loss(out["image"], target) + self.cfg.raw_weight * F.mse_loss(out["image_raw"], target_raw)
                + self.cfg.perceptual_weight * perceptual_distance(self.idnet, out["image"], target).mean()
                + self.points(out["planes"], z, cams, rng))
        return _optimiser_step(self.optim, loss)

    def final_state(self) -> dict[str, torch.Tensor]:
        set_w_avg(self.G, self.stage.seed)
        return self.G.state_dict()


def cosine_lr(optim: torch.optim.Optimizer, stage: StageConfig, k: int) -> None:
    """Set step k's learning rate: cosine decay from `stage.lr` to 0 (a function of k alone, so
    resuming needs no scheduler state)."""
    for group in optim.param_groups:
        group["lr"] = stage.lr * 0.5 * (1 + math.cos(math.pi * k / stage.steps))


def _checkpoint_path(out: Path, name: str) -> Path:
    return out / CHECKPOINT_DIR / f"{name}.pt"


def _resume(trainer, out: Path, name: str, cfg: WorldTrainConfig) -> int:
    """Load the stage's checkpoint into `trainer` if there is one; the step to continue from."""
    path = _checkpoint_path(out, name)
    if not path.exists():
        return 0
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt["config"] != cfg.model_dump_json():
        raise ConfigError(f"{path} was written with another training config; remove it or rerun with that config")
    for key, module in trainer.modules.items():
        module.load_state_dict(ckpt[key])
    trainer.optim.load_state_dict(ckpt["optim"])
    return int(ckpt["step"])


def _save_checkpoint(trainer, out: Path, name: str, cfg: WorldTrainConfig, step: int) -> None:
    path = _checkpoint_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: module.state_dict() for key, module in trainer.modules.items()}
    with atomic_file(path) as tmp:
        torch.save({**state, "optim": trainer.optim.state_dict(), "step": step, "config": cfg.model_dump_json()}, tmp)


def run_stage(trainer, out: Path, name: str, cfg: WorldTrainConfig, budget: int | None,
              progress: bool = True) -> tuple[int, float | None]:
    """Train `name` from its checkpoint for at most `budget` steps (None: to the end).

    Returns (steps done now, mean seconds per step); writes the final file when the stage ends.
    """
    stage = getattr(cfg, name)
    start = _resume(trainer, out, name, cfg)
    stop = stage.steps if budget is None else min(stage.steps, start + budget)
    t0 = time.perf_counter()
    with tqdm(total=stage.steps, initial=start, desc=name, disable=not progress, dynamic_ncols=True) as bar:
        for k in range(start, stop):
            cosine_lr(trainer.optim, stage, k)
            loss = trainer.step(k)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if (k + 1) % cfg.checkpoint_every == 0 or k + 1 == stop:
                _save_checkpoint(trainer, out, name, cfg, k + 1)
    done = stop - start
    seconds = (time.perf_counter() - t0) / done if done else None
    if stop == stage.steps:
        with atomic_file(out / FILES[name]) as tmp:
            torch.save(trainer.final_state(), tmp)
    return done, seconds


def write_manifest(out: Path, cfg: WorldTrainConfig) -> dict[str, str]:
    """world.json (everything needed to rebuild the networks) and manifest.json (sha256 per file)."""
    world = {
        "training": cfg.model_dump(mode="json"),
        "generator_init_kwargs": WORLD,
        "identity_params": list(PARAM_NAMES),
        "z_map_seed": Z_MAP_SEED,
        "files": FILES,
        "lpips": "id_loss trunk (guide_ray.world.idnet.perceptual_distance)",
        "fid_features": "id_metric trunk, pooled last stage (guide_ray.world.idnet.fid_features)",
    }
    with atomic_file(out / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(world, indent=2, sort_keys=True) + "\n")
    names = [CONFIG_FILE, *(FILES[s] for s in SHIPPED if (out / FILES[s]).exists())]
    manifest = {name: file_sha256(out / name) for name in names}
    with atomic_file(out / MANIFEST_FILE) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def train_world(out: Path, cfg: WorldTrainConfig, budget: int | None = None,
                progress: bool = True) -> dict[str, tuple[int, float | None]]:
    """Run every unfinished stage (at most `budget` steps in all this sitting); {stage: (steps, s/step)}."""
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, tuple[int, float | None]] = {}
    for name in STAGES:
        if (out / FILES[name]).exists():
            report[name] = (0, None)
            continue
        if budget is not None and budget <= 0:
            break
        if name == "generator":
            load = lambda stage: torch.load(out / FILES[stage], map_location="cpu", weights_only=True)  # noqa: E731
            trainer = _GeneratorStage(cfg, load("id_loss"), load("generator_3d"))
        elif name == "generator_3d":
            trainer = _Generator3DStage(cfg)
        else:
            trainer = _IdentityStage(name, cfg)
        report[name] = run_stage(trainer, out, name, cfg, budget, progress)
        if budget is not None:
            budget -= report[name][0]
        if not (out / FILES[name]).exists():
            break
    write_manifest(out, cfg)
    return report


