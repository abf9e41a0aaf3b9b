"""The backend seam, torch half: what the pipeline and the metrics ask of a generator backend.

`get_backend(name)` builds the `GeneratorBackend` of a registry entry (guide_ray.config.backends):
the frozen G_s (an UnlearnableGenerator), the Random scenario's source latent, the photo
inverter, the views of the ID metric, the renders of the FID sets and the tensors saved as the
unlearned artifact. Cameras, tri-planes and GOAE live in backends/eg3d.py only; the pipeline,
metrics/identity.py and metrics/fid.py call these methods and never branch on a backend name.
One instance per Pipeline: it may cache networks it loads (encoders). No Ray here.
"""

from __future__ import annotations

import copy
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from guide_ray.config.backends import BackendInfo, backend_info
from guide_ray.config.guide import CameraConfig
from guide_ray.config.job import InversionSpec
from guide_ray.guide.generator import UnlearnableGenerator
from guide_ray.guide.inversion import Inverter
from guide_ray.models.nets.base import LossNets
from guide_ray.utils.seeding import derive_seed

# G, w [1, L, C] → images [V, 3, R, R] in [-1, 1]: the views the ID metric and the grid compare
Views = Callable[[UnlearnableGenerator, Tensor], Tensor]
# G, z [B, z_dim], yaw [B] (radians; 2D ignores it), render generator, noise mode → images [B, 3, R, R]
SampleRender = Callable[[UnlearnableGenerator, Tensor, Tensor, torch.Generator, str], Tensor]


class GeneratorBackend(ABC):
    """One backend's torch builders; `info` holds its registry facts."""

    def __init__(self, info: BackendInfo) -> None:
        self.info = info

    @property
    def name(self) -> str:
        return self.info.name

    @abstractmethod
    def load_generator(self, weights_dir: Path, device: torch.device) -> UnlearnableGenerator:
        """G_s: eval, frozen, on `device`. Raises WeightsMissing / WeightsInvalid naming the file."""

    @abstractmethod
    def source_latent(self, G: UnlearnableGenerator, seed: int, camera: CameraConfig) -> Tensor:
        """The Random scenario's w_u [1, L, C] from `seed` (z drawn on the CPU: device-independent)."""

    @abstractmethod
    def id_views(self, camera: CameraConfig, n_views: int, seed: int = 0) -> Views:
        """The renders the ID metric compares (constant noise, seeded draws)."""

    @abstractmethod
    def fid_render(self, camera: CameraConfig) -> SampleRender:
        """How one FID sample is rendered from z (psi = 1)."""

    @abstractmethod
    def load_photo(self, path: Path) -> Tensor:
        """A source photo as the inverter takes it, [1, 3, H, W] in [-1, 1]; BadImage naming the file."""

    @abstractmethod
    def inverter(self, G: UnlearnableGenerator, nets: LossNets, spec: InversionSpec, weights_dir: Path,
                 device: torch.device, seed: int) -> Inverter:
        """The job's inversion method for this backend, seeded from the identity's `seed`."""

    def real_stats(self, G_s: UnlearnableGenerator, extractor, spec, camera: CameraConfig, device: torch.device,
                   cache_dir: Path):
        """ΔFID_real's real-image statistics when the backend owns its ground truth (the synthetic world);
        None: they come from a file (GUIDE's ffhq_real_feat.npy or `fid.real_stats`)."""
        return None

    @abstractmethod
    def unlearned_state(self, G_u: UnlearnableGenerator) -> dict[str, Tensor]:
        """The trained tensors saved as the artifact (torch.load(weights_only=True)-loadable)."""

    def load_unlearned(self, G_s: UnlearnableGenerator, state: dict[str, Tensor]) -> UnlearnableGenerator:
        """G_u rebuilt from G_s and the artifact `unlearned_state` wrote (a fresh copy; G_s untouched)."""
        raise NotImplementedError(f"backend {self.name!r} cannot rebuild G_u from its artifact yet")

    # The verification seam (guide-ray verify). The defaults fit a 2D backend: one view, no camera.
    yaw_limit: float = 0.0          # the pose sweep covers yaw in [-yaw_limit, yaw_limit] (radians)

    def view_camera(self, camera: CameraConfig, yaw: Tensor, pitch_offset: Tensor) -> Tensor | None:
        """Camera labels [B, 25] for yaws [B] and polar offsets [B] from pi/2; None for a 2D backend."""
        return None

    def probe_latents(self, G: UnlearnableGenerator, n: int, seed: int, camera: CameraConfig) -> Tensor:
        """n seeded latents [n, L, C] of other identities (Random-scenario latents of derived seeds)."""
        return torch.cat([self.source_latent(G, derive_seed(seed, f"probe:{i}"), camera) for i in range(n)])

    def calibration_latents(self, G: UnlearnableGenerator, n: int, seed: int, camera: CameraConfig) -> Tensor:
        """Latents [n, L, C] of n identities known to be distinct, for the verdict's threshold.

        Only for backends whose registry entry says `calibrates`: there, independent seeded latents
        are distinct identities by construction. A backend that knows its population overrides this.
        """
        if not self.info.calibrates:
            raise NotImplementedError(f"backend {self.name!r} has no population of distinct identities")
        return self.probe_latents(G, n, derive_seed(seed, "calibration"), camera)


def get_backend(name: str) -> GeneratorBackend:
    """A fresh backend object for registry entry `name` (ConfigError if unknown)."""
    info = backend_info(name)
    return importlib.import_module(info.module).BACKEND(info)


def load_state(G_s: nn.Module, part: Callable[[nn.Module], nn.Module], state: dict[str, Tensor]) -> nn.Module:
    """A deep copy of G_s whose sub-module `part(copy)` takes `state`: every key must exist there with
    its shape (other tensors of the part, and the rest of G_s, stay as they were)."""
    G_u = copy.deepcopy(G_s)
    module = part(G_u)
    own = module.state_dict()
    wrong = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise ValueError(f"unlearned state does not fit the generator: {wrong[:5]}")
    module.load_state_dict(state, strict=False)
    return G_u


def cpu_state(module: nn.Module, prefixes: tuple[str, ...] = ("",)) -> dict[str, Tensor]:
    """Detached CPU copies of `module`'s state_dict entries whose names start with one of `prefixes`."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items() if k.startswith(prefixes)}
