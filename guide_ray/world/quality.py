"""`guide-ray world evaluate`: the measured quality of the shipped world, as JSON + Markdown + plots.

Identity networks: cosine of two random photos (random camera, light, expression) of each of n
held-out identities (a population seed never used in training) vs every pair of different
identities; TAR at FAR = 1e-2 and 1e-3 and the thresholds. Generator fidelity: the `id_metric`
cosine between the generator's and the renderer's image of the same latent at the same camera,
per yaw; the same-identity cosine of the renderer at that yaw against its own frontal view (the
ceiling the generator can reach) and of the generator against its own frontal view; and the cosine
between the generator's frontal images of different latents (GUIDE's ID metric compares the
generator with itself, so these two say whether forgetting is measurable in this world). Inversion: projection of frontal photos into G_s and the ID
cosine of the reconstruction to the photo.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from guide_ray.guide.inversion import ProjectionInverter, goae_frontal_camera
from guide_ray.utils.files import atomic_file
from guide_ray.utils.seeding import make_rng
from guide_ray.world.evaluate import generator_embeddings, generator_fidelity, tar_at_far, verification_scores
from guide_ray.world.nets import WorldPerceptual
from guide_ray.world.nuisance import canonical_nuisance, cameras
from guide_ray.world.photos import identity_photos
from guide_ray.world.population import sample_identities, z_to_identity
from guide_ray.world.renderer import render
from guide_ray.world.shipped import WorldSource, load_identity_net, load_world_generator

HELDOUT_SEED = 9_100_000     # not a training seed: identities the networks never saw
YAWS = (-0.6, -0.45, -0.2618, 0.0, 0.2618, 0.45, 0.6)


def _stats(x: torch.Tensor) -> dict[str, float]:
    x = x.double()
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "n": int(x.numel())}


@torch.no_grad()
def identity_quality(source: WorldSource, n: int, seed: int = HELDOUT_SEED) -> dict:
    out = {}
    for role in ("id_loss", "id_metric"):
        net = load_identity_net(role, source)
        ids = sample_identities(n, make_rng(seed, "heldout"))
        same, different = verification_scores(net, ids, make_rng(seed, f"photos:{role}"))
        out[role] = {"same": _stats(same), "different": _stats(different),
                     **{f"far_{far:g}": dict(zip(("tar", "threshold"), tar_at_far(same, different, far)))
                        for far in (1e-2, 1e-3)},
                     "_scores": (same, different)}
    return out


@torch.no_grad()
def generator_quality(source: WorldSource, n: int, seed: int = HELDOUT_SEED) -> dict:
    G, net = load_world_generator(source), load_identity_net("id_metric", source)
    z = torch.randn(n, G.z_dim, generator=make_rng(seed, "fidelity"))
    yaws = torch.tensor(YAWS)
    fake = generator_embeddings(G, net, z, yaws)                                   # [n, Y, D]
    fidelity = generator_fidelity(G, net, z, yaws, fake=fake)                      # [n, Y]
    real = render(z_to_identity(z).repeat_interleave(len(YAWS), 0), cameras(yaws.repeat(n)),
                  canonical_nuisance(n * len(YAWS)), G.img_resolution)
    emb = net(real).view(n, len(YAWS), -1)
    frontal = YAWS.index(0.0)
    ceiling = (emb * emb[:, frontal:frontal + 1]).sum(-1)                            # [n, Y]
    own = (fake * fake[:, frontal:frontal + 1]).sum(-1)                              # [n, Y]
    others = fake[:, frontal] @ fake[:, frontal].T
    return {"yaws": list(YAWS), "generator_vs_renderer": fidelity.mean(0).tolist(),
            "generator_vs_renderer_std": fidelity.std(0).tolist(),
            "renderer_vs_own_frontal": ceiling.mean(0).tolist(),
            "generator_vs_own_frontal": own.mean(0).tolist(),
            "generator_different_latents": _stats(others[~torch.eye(n, dtype=torch.bool)]), "n": n}


def inversion_quality(source: WorldSource, n: int, steps: int, seed: int = HELDOUT_SEED) -> dict:
    G, loss_net, metric = load_world_generator(source), load_identity_net("id_loss", source), load_identity_net("id_metric", source)
    sims = []
    for i, identity in enumerate(sample_identities(n, make_rng(seed, "inversion"))):
        photo = identity_photos(identity, 1, make_rng(seed, f"inversion:{i}"))          # [1, 3, 256, 256]
        w = ProjectionInverter(G, WorldPerceptual(loss_net), steps=steps, seed=i).invert(photo)
        with torch.no_grad():
            image = G.synthesis(w, goae_frontal_camera(), noise_mode="const")["image"]
            target = F.interpolate(photo, size=image.shape[-2:], mode="bilinear", antialias=True)
            sims.append(float((metric(image) * metric(target)).sum()))
    return {"steps": steps, "photo_vs_inversion": _stats(torch.tensor(sims)), "values": sims}


def write_report(source: WorldSource, out: Path, n_ids: int, n_gen: int, n_inv: int, inversion_steps: int) -> dict:
    """world_quality.{json,md} and identity_cosines.png (same / different histograms) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ident = identity_quality(source, n_ids)
    gen = generator_quality(source, n_gen)
    inv = inversion_quality(source, n_inv, inversion_steps) if n_inv else None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, role in zip(axes, ("id_loss", "id_metric")):
        same, different = ident[role].pop("_scores")
        ax.hist(different.numpy(), bins=60, density=True, alpha=0.6, label="different identities")
        ax.hist(same.numpy(), bins=30, density=True, alpha=0.6, label="same identity, two photos")
        ax.axvline(ident[role]["far_0.001"]["threshold"], color="k", ls="--", lw=1, label="threshold @ FAR 1e-3")
        ax.set_title(f"{role}: TAR@FAR1e-2 = {ident[role]['far_0.01']['tar']:.3f}")
        ax.set_xlabel("cosine")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(out / "identity_cosines.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    report = {"identity": ident, "generator": gen, "inversion": inv, "heldout_seed": HELDOUT_SEED,
              "world": str(source.folder), "origin": source.origin}
    with atomic_file(out / "world_quality.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_file(out / "world_quality.md") as tmp:
        tmp.write_text(markdown(report))
    return report


def markdown(r: dict) -> str:
    lines = ["# Synthetic world: measured quality", "", "| network | same-identity cosine | different-identity "
             "cosine | TAR @ FAR 1e-2 (threshold) | TAR @ FAR 1e-3 (threshold) |", "|---|---|---|---|---|"]
    for role, q in r["identity"].items():
        lines.append(f"| {role} | {q['same']['mean']:.3f} ± {q['same']['std']:.3f} (n {q['same']['n']}) | "
                     f"{q['different']['mean']:.3f} ± {q['different']['std']:.3f} (n {q['different']['n']}) | "
                     f"{q['far_0.01']['tar']:.3f} ({q['far_0.01']['threshold']:.3f}) | "
                     f"{q['far_0.001']['tar']:.3f} ({q['far_0.001']['threshold']:.3f}) |")
    g = r["generator"]
    lines += ["", f"Generator fidelity (id_metric cosine, {g['n']} latents, canonical light):", "",
              "| yaw | " + " | ".join(f"{y:+.2f}" for y in g["yaws"]) + " |",
              "|---|" + "---|" * len(g["yaws"]),
              "| generator vs renderer, same camera | " + " | ".join(f"{v:.3f}" for v in g["generator_vs_renderer"]) + " |",
              "| renderer vs its own frontal view | " + " | ".join(f"{v:.3f}" for v in g["renderer_vs_own_frontal"]) + " |",
              "| generator vs its own frontal view | " + " | ".join(f"{v:.3f}" for v in g["generator_vs_own_frontal"]) + " |",
              "", f"Generator, different latents at the frontal view: cosine "
              f"{g['generator_different_latents']['mean']:.3f} ± {g['generator_different_latents']['std']:.3f} "
              f"(n {g['generator_different_latents']['n']}): how far apart the generator's own identities are."]
    if r["inversion"]:
        inv = r["inversion"]["photo_vs_inversion"]
        lines += ["", f"Inversion (projection, {r['inversion']['steps']} steps, {inv['n']} frontal photos): "
                  f"ID cosine of reconstruction to photo {inv['mean']:.3f} ± {inv['std']:.3f} "
                  f"(min {inv['min']:.3f})."]
    return "\n".join(lines) + "\n"
