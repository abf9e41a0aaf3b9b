"""The world's quality figures: identity verification (same vs different cosine, TAR at a FAR)
and generator fidelity (ID similarity of generator and renderer at the same latent and camera)."""

from __future__ import annotations

import torch
from torch import Tensor

from guide_ray.world.generator import generate
from guide_ray.world.idnet import WorldIdentityNet
from guide_ray.world.nuisance import canonical_nuisance, cameras, sample_cameras, sample_nuisance
from guide_ray.world.population import z_to_identity
from guide_ray.world.renderer import render


@torch.no_grad()
def verification_scores(net: WorldIdentityNet, identities: Tensor, rng: torch.Generator,
                        resolution: int = 64) -> tuple[Tensor, Tensor]:
    """Two photos (random camera, light, expression) of each identity [n, P]: cosine of the n
    same-identity pairs and of the n(n-1) different-identity pairs."""
    n = identities.shape[0]
    photos = [render(identities, sample_cameras(n, rng), sample_nuisance(n, rng), resolution, supersample=1)
              for _ in range(2)]
    a, b = (net.eval()(p) for p in photos)
    sims = a @ b.T
    return sims.diagonal().clone(), sims[~torch.eye(n, dtype=torch.bool)]


def tar_at_far(same: Tensor, different: Tensor, far: float = 1e-2) -> tuple[float, float]:
    """(TAR, threshold): the share of same-identity pairs above the cosine that only a fraction
    `far` of different-identity pairs exceed."""
    threshold = float(torch.quantile(different.double(), 1 - far))
    return float((same.double() > threshold).double().mean()), threshold


@torch.no_grad()
def generator_embeddings(G, net: WorldIdentityNet, z: Tensor, yaws: Tensor) -> Tensor:
    """Identity embeddings [n, Y, D] of the generator's image of latent z_i at yaw_j (depth draws
    seeded, so every caller sees the same images)."""
    n, m = z.shape[0], yaws.shape[0]
    fake = generate(G.eval(), z.repeat_interleave(m, 0), cameras(yaws.repeat(n)),
                    generator=torch.Generator().manual_seed(0))["image"]
    return net.eval()(fake).view(n, m, -1)


@torch.no_grad()
def generator_fidelity(G, net: WorldIdentityNet, z: Tensor, yaws: Tensor, resolution: int = 64,
                       fake: Tensor | None = None) -> Tensor:
    """Cosine [n, Y] between the generator's image of latent z_i at yaw_j and the renderer's image
    of identity z_to_identity(z_i) at the same camera (canonical light, neutral expression);
    `fake` = generator_embeddings(G, net, z, yaws) when the caller already has them."""
    n, m = z.shape[0], yaws.shape[0]
    if fake is None:
        fake = generator_embeddings(G, net, z, yaws)
    zz = z.repeat_interleave(m, 0)
    real = render(z_to_identity(zz), cameras(yaws.repeat(n)), canonical_nuisance(n * m), resolution)
    return (fake * net.eval()(real).view(n, m, -1)).sum(-1)
