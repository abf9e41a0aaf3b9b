"""The metric registry: every per-identity metric guide_ray can report, described once.

Job validation (which names a job may list), the result schema (one float column each), the
pipeline (what to load and compute), the weights check (which files a metric reads) and the
reducer (headers, direction, decimals) all read this table; no other module spells a metric
name. A later metric is one more `MetricSpec` here plus its computation in the pipeline.
No torch, no ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from guide_ray.utils.text import did_you_mean

Direction = Literal["lower", "higher"]
# What computing a metric reads besides the two generators:
#   id_network    the ID-metric embedder (CurricularFace on real weights)
#   fid_extractor an Inception feature extractor
#   real_stats    statistics of real images (GUIDE's ffhq_real_feat.npy or a `guide-ray fid-stats` file)
#   photos        the identity's other photos (manifest `other_images`)
#   samples       generated samples of both generators (fid.num_samples each)
#   perceptual    the perceptual network of GUIDE's loss (LPIPS; every run loads it already)
#   probes        paired renders of both generators on a fixed seeded probe set (the job's `lpips_drift:`)
Need = Literal["id_network", "fid_extractor", "real_stats", "photos", "samples", "perceptual", "probes"]


@dataclass(frozen=True)
class MetricSpec:
    name: str                 # what a job lists under `metrics:`; also the result column
    display: str              # table header, without the direction arrow
    direction: Direction      # which way is better (all of them are ↓)
    decimals: int             # digits in the summary tables (the paper's Table 1 precision)
    needs: frozenset[Need]
    description: str          # the result column's description

    @property
    def column(self) -> str:
        return self.name

    @property
    def header(self) -> str:
        return f"{self.display} {'↓' if self.direction == 'lower' else '↑'}"


ID = MetricSpec(
    "ID", "ID", "lower", 4, frozenset({"id_network"}),
    "identity similarity of the same latent before vs after, target views (lower = forgotten)")
ID_OTHERS = MetricSpec(
    "ID_others", "ID_others", "lower", 4, frozenset({"id_network", "photos"}),
    "same, on the person's other images; null for random/ffhq")
FID_PRE = MetricSpec(
    "FID_pre", "FID_pre", "lower", 3, frozenset({"fid_extractor", "samples"}),
    "FID(pretrained samples, unlearned samples)")
DELTA_FID_REAL = MetricSpec(
    "delta_FID_real", "ΔFID_real", "lower", 3, frozenset({"fid_extractor", "real_stats", "samples"}),
    "FID(real, unlearned) - FID(real, pretrained), one extractor for all three sets")

LPIPS_DRIFT = MetricSpec(
    "LPIPS_drift", "LPIPS_drift", "lower", 4, frozenset({"perceptual", "probes"}),
    "mean LPIPS (the backend's perceptual loss network) between pretrained and unlearned renders of the job's "
    "fixed probe latents (lpips_drift: num_probes, seed): a cheap damage proxy; not in the paper")

METRICS: tuple[MetricSpec, ...] = (ID, ID_OTHERS, FID_PRE, DELTA_FID_REAL, LPIPS_DRIFT)
BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}
METRIC_NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULT_METRICS: tuple[str, ...] = (ID.name, ID_OTHERS.name)


def metric(name: str) -> MetricSpec:
    """The spec of `name`; ValueError with a did-you-mean otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown metric {name!r}{did_you_mean(name, METRIC_NAMES)}; choose from {', '.join(METRIC_NAMES)}")
    return BY_NAME[name]


def needing(need: Need, names: tuple[str, ...] | list[str]) -> list[MetricSpec]:
    """The metrics among `names` that need `need`, in registry order."""
    wanted = set(names)
    return [m for m in METRICS if m.name in wanted and need in m.needs]
