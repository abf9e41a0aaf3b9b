"""The backend registry, torch-free half: every generator backend by name, with the facts the
config, the weights registry and the engine need before any network is built.

A backend is a frozen generator G_s plus everything that depends on it: the photo inverter, the
views the ID metric and the FID renders use, and which tensors form the unlearned artifact. Those
torch pieces live in the module named by `BackendInfo.module` (guide_ray/backends/); this table
says which files a backend reads, how photos become latents, and whether it has cameras. Adding a
backend = one entry here + one module there. No torch, no ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from guide_ray.errors import ConfigError
from guide_ray.utils.text import did_you_mean

Dims = Literal["3d", "2d"]
# Where a backend's loss / metric / FID networks come from: the released files ("real"), the
# labelled untrained stand-ins ("stand-in"), or the networks trained in the synthetic world and
# shipped in the package ("world", guide_ray/world/).
Nets = Literal["real", "stand-in", "world"]


@dataclass(frozen=True)
class BackendInfo:
    """What is known about a backend without building it."""

    name: str
    module: str                        # guide_ray.backends.<x>: its torch builders (`BACKEND` class there)
    dims: Dims                         # "3d": camera-conditioned renders (yaw sweeps); "2d": one view, no camera
    description: str
    nets: Nets
    generator_files: tuple[str, ...] = ()   # weights-registry file names G_s is read from
    loss_files: tuple[str, ...] = ()        # LPIPS-VGG trunk + IR-SE50 of GUIDE's losses (none for stand-ins)
    # photo inversion methods, the first the default, each with the files it reads beyond the above
    inverters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # `guide-ray verify` may calibrate its match threshold on this backend's population of distinct
    # identities (GeneratorBackend.calibration_latents); False: the user must give a threshold
    calibrates: bool = False

    @property
    def stand_in(self) -> bool:
        """Untrained seeded networks: numbers not comparable with anything."""
        return self.nets == "stand-in"

    @property
    def embedded(self) -> bool:
        """Needs none of the released files (stand-ins, or the synthetic world, trained here)."""
        return self.nets != "real"

    @property
    def default_inversion(self) -> str:
        return next(iter(self.inverters))


_LOSS_FILES = ("model_ir_se50.pth", "vgg16-397923af.pth")

BACKENDS: dict[str, BackendInfo] = {b.name: b for b in (
    BackendInfo("world", "guide_ray.backends.world", "3d",
                "the synthetic face world: an EG3D distilled from a procedural face renderer, with identity, "
                "perceptual and FID networks trained on its renders (`guide-ray world train`; docs/world.md)",
                nets="world", inverters={"projection": ()}, calibrates=True),
    BackendInfo("tiny", "guide_ray.backends.eg3d", "3d",
                "embedded CPU-sized EG3D (untrained, seeded) with stand-in loss and metric networks",
                nets="stand-in", inverters={"projection": ()}, calibrates=True),
    BackendInfo("eg3d-ffhq512-128", "guide_ray.backends.eg3d", "3d",
                "the released EG3D FFHQ 512² (neural rendering 128), GUIDE's generator",
                nets="real", generator_files=("ffhqrebalanced512-128.pkl",), loss_files=_LOSS_FILES,
                inverters={"goae": ("encoder_FFHQ.pt",), "projection": ()}),
    BackendInfo("stylegan2-tiny", "guide_ray.backends.stylegan2", "2d",
                "embedded CPU-sized StyleGAN2 + pSp encoder (untrained, seeded) with stand-in networks",
                nets="stand-in", inverters={"psp": ()}, calibrates=True),
    BackendInfo("stylegan2-ffhq1024", "guide_ray.backends.stylegan2", "2d",
                "StyleGAN2 FFHQ 1024² + pSp encoder from psp_ffhq_encode.pt (GUIDE-SG2, paper appendix A.7)",
                nets="real", generator_files=("psp_ffhq_encode.pt",), loss_files=_LOSS_FILES,
                inverters={"psp": ()}),   # the encoder is in the generator's file
)}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)
INVERSION_METHODS: tuple[str, ...] = tuple(dict.fromkeys(m for b in BACKENDS.values() for m in b.inverters))


def backend_info(name: str) -> BackendInfo:
    """The registry entry of `name`; ConfigError with a did-you-mean for an unknown name."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}{did_you_mean(name, BACKEND_NAMES)}; choose from {', '.join(BACKEND_NAMES)}")
    return BACKENDS[name]
