"""The world's identities: documented parameter ranges, an in-domain and a shifted out-of-domain
population, seeded sampling, and the fixed map from a generator latent z to identity parameters.

Every identity is a vector of `len(PARAMS)` numbers in physical units (scene units: the head is
about 0.4 wide, the camera orbits at 2.7). In-domain identities draw each parameter uniformly and
independently from its `in_domain` range; out-of-domain identities draw from `ood`, which moves the
colour ranges (green-tinted skin, dyed red hair) and widens the head, jaw, nose and eyes.

The latent map is `u = Phi(Q z)` with `Q` a fixed orthonormal [P, z_dim] matrix (QR of a Gaussian
drawn from Z_MAP_SEED) and `Phi` the standard normal CDF, then `lo + (hi - lo) * u` in the
in-domain ranges. For z ~ N(0, I) the rows of Q z are independent N(0, 1), so the generator's
latent distribution is exactly the in-domain population.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class ParamSpec(NamedTuple):
    name: str
    in_domain: tuple[float, float]
    ood: tuple[float, float]


PARAMS: tuple[ParamSpec, ...] = (
    # shape (scene units)
    ParamSpec("head_w", (0.165, 0.200), (0.200, 0.225)),      # half-width of the cranium ellipsoid
    ParamSpec("head_h", (0.230, 0.265), (0.220, 0.245)),      # half-height
    ParamSpec("head_d", (0.215, 0.245), (0.215, 0.245)),      # half-depth
    ParamSpec("jaw_w", (0.110, 0.160), (0.150, 0.185)),       # half-width of the jaw ellipsoid
    ParamSpec("chin_y", (-0.215, -0.175), (-0.200, -0.170)),  # lowest point of the chin
    ParamSpec("eye_sep", (0.062, 0.082), (0.075, 0.092)),     # half the distance between the eyes
    ParamSpec("eye_y", (0.020, 0.050), (0.020, 0.050)),       # eye height
    ParamSpec("eye_r", (0.020, 0.027), (0.027, 0.033)),       # eyeball radius
    ParamSpec("brow_gap", (0.030, 0.050), (0.030, 0.050)),    # brow height above the eye
    ParamSpec("brow_thick", (0.007, 0.015), (0.007, 0.015)),  # brow half-thickness
    ParamSpec("brow_tilt", (-0.35, 0.35), (-0.35, 0.35)),     # brow slope (outer end up > 0)
    ParamSpec("nose_y", (-0.045, -0.020), (-0.045, -0.020)),  # nose centre height
    ParamSpec("nose_len", (0.040, 0.065), (0.040, 0.065)),    # nose half-length
    ParamSpec("nose_w", (0.018, 0.032), (0.030, 0.040)),      # nose half-width
    ParamSpec("nose_out", (0.030, 0.060), (0.030, 0.060)),    # how far the nose tip stands out
    ParamSpec("mouth_y", (-0.115, -0.090), (-0.115, -0.090)), # mouth height
    ParamSpec("mouth_w", (0.040, 0.060), (0.040, 0.060)),     # mouth half-width
    ParamSpec("lip_h", (0.010, 0.018), (0.010, 0.018)),       # lip half-height
    ParamSpec("ear_size", (0.035, 0.055), (0.035, 0.055)),    # ear half-height
    ParamSpec("hairline", (0.080, 0.170), (0.080, 0.170)),    # hair line height on the forehead
    ParamSpec("hair_volume", (0.008, 0.045), (0.008, 0.045)), # hair thickness over the cranium
    # colour (0..1 mixing weights and tints)
    ParamSpec("skin_tone", (0.0, 1.0), (0.0, 1.0)),           # light to dark skin
    ParamSpec("skin_tint", (-0.04, 0.04), (0.07, 0.13)),       # ood: green-blue tinted skin
    ParamSpec("hair_tone", (0.0, 1.0), (0.0, 1.0)),           # black to blond
    ParamSpec("hair_red", (0.0, 0.12), (0.30, 0.50)),         # ood: dyed red hair
    ParamSpec("iris_tone", (0.0, 1.0), (0.0, 1.0)),           # blue to brown (ood: grey to green)
    ParamSpec("lip_red", (0.30, 0.70), (0.30, 0.70)),         # how much redder than skin the lips are
)
PARAM_NAMES = tuple(p.name for p in PARAMS)
PARAM_INDEX = {name: i for i, name in enumerate(PARAM_NAMES)}
NUM_PARAMS = len(PARAMS)
DOMAINS = ("in_domain", "ood")
Z_MAP_SEED = 9_000_001


def param_ranges(domain: str) -> tuple[Tensor, Tensor]:
    """(lo, hi) [P] of `domain` ('in_domain' or 'ood')."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    bounds = torch.tensor([getattr(p, domain) for p in PARAMS], dtype=torch.float64)
    return bounds[:, 0].float(), bounds[:, 1].float()


def from_unit(u: Tensor, domain: str = "in_domain") -> Tensor:
    """Unit-cube coordinates u [B, P] → identity parameters [B, P] of `domain`."""
    lo, hi = param_ranges(domain)
    return lo + (hi - lo) * u


def sample_identities(n: int, generator: torch.Generator, domain: str = "in_domain") -> Tensor:
    """n identities [n, P] of `domain`, each parameter uniform in its range."""
    return from_unit(torch.rand(n, NUM_PARAMS, generator=generator), domain)


def z_map_matrix(z_dim: int) -> Tensor:
    """The fixed orthonormal map Q [P, z_dim] (rows orthonormal), from Z_MAP_SEED."""
    if z_dim < NUM_PARAMS:
        raise ValueError(f"z_dim {z_dim} < {NUM_PARAMS} identity parameters")
    g = torch.Generator().manual_seed(Z_MAP_SEED)
    q, r = torch.linalg.qr(torch.randn(z_dim, NUM_PARAMS, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # QR is unique up to column signs; pin them
    return q.T.float().contiguous()


def z_to_identity(z: Tensor) -> Tensor:
    """Generator latents z [B, z_dim] → in-domain identity parameters [B, P] (see module docstring)."""
    u = torch.special.ndtr(z @ z_map_matrix(z.shape[1]).T)
    return from_unit(u, "in_domain")
