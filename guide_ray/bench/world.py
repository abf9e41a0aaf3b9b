"""What a benchmark step runs on: a preset generator (seeded random weights are fine for timing),
its trainable copy, the loss networks and one identity, all from one seed.

`nets="standin"` uses the CPU stand-ins; `nets="random-real"` builds the real LPIPS-VGG and IR-SE50
architectures with random weights (the trunk written to a temporary file, as LpipsVGG reads one),
so their cost is in the timings without any download; `nets="world"` are the synthetic world's
trained loss networks. The `world` preset is the trained world generator shipped in the package
(the embedded default backend, guide_ray/world/shipped.py), not a seeded random one.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from guide_ray.config.guide import GuideConfig
from guide_ray.guide.loop import trainable_parameters
from guide_ray.guide.targets import make_target
from guide_ray.models.eg3d.camera import frontal_camera
from guide_ray.models.eg3d.presets import PRESETS, build_generator
from guide_ray.models.nets.base import LossNets

Nets = Literal["standin", "random-real", "world"]
WORLD_PRESET = "world"
PRESET_NAMES = (*PRESETS, WORLD_PRESET)
DEFAULT_NETS: dict[str, Nets] = {"tiny": "standin", "ffhq512-128": "random-real", WORLD_PRESET: "world"}


@dataclass
class StepWorld:
    G_s: torch.nn.Module
    nets: LossNets
    w_u: Tensor          # [1, L, C]
    w_t: Tensor          # [1, L, C]
    c_front: Tensor      # [1, 25]
    device: torch.device

    def trainable_copy(self) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """A fresh G_u (train mode, synthesis trainable) and its Adam, as the loop sets them up."""
        G_u = copy.deepcopy(self.G_s)
        params = trainable_parameters(G_u)
        G_u.train()
        return G_u, torch.optim.Adam(params, lr=GuideConfig().lr)


def build_nets(kind: Nets, device: torch.device) -> LossNets:
    if kind == "standin":
        from guide_ray.models.nets.standin import StandInIdentity, StandInPerceptual
        return LossNets(StandInPerceptual().to(device), StandInIdentity().to(device))
    if kind == "world":
        from guide_ray.world.nets import world_loss_nets
        from guide_ray.world.shipped import load_identity_net, world_source
        return world_loss_nets(load_identity_net("id_loss", world_source(None)).to(device))
    import torchvision

    from guide_ray.models.nets.identity import IRSE50Identity
    from guide_ray.models.nets.irse import build_ir_se50
    from guide_ray.models.nets.perceptual import LpipsVGG

    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        trunk = Path(tmp) / "vgg16-random.pth"
        torch.save(torchvision.models.vgg16(weights=None).state_dict(), trunk)
        perceptual = LpipsVGG(trunk)
        identity = IRSE50Identity(build_ir_se50())
    return LossNets(perceptual.to(device), identity.to(device))


def build_world(preset: str, device: torch.device | str, nets: Nets, seed: int = 0) -> StepWorld:
    """G_s of `preset` (PRESET_NAMES) on `device`, frozen; w_u a seeded mapping sample."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESET_NAMES)}")
    device = torch.device(device)
    G_s = (_shipped_world_generator() if preset == WORLD_PRESET else build_generator(preset, seed=seed))
    G_s = G_s.to(device).eval().requires_grad_(False)
    c_front = frontal_camera(1, device=device)
    with torch.no_grad():
        z = torch.randn(1, G_s.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        w_u = G_s.mapping(z, c_front)
    w_t = make_target(GuideConfig(), w_u, G_s.w_avg).detach()
    return StepWorld(G_s, build_nets(nets, device), w_u, w_t, c_front, device)


def _shipped_world_generator() -> torch.nn.Module:
    from guide_ray.world.shipped import load_world_generator, world_source
    return load_world_generator(world_source(None))
