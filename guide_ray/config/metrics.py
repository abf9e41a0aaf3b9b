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
#   attacks       the unlearned generator's artifact, attacked by `guide-ray verify` (RUN/verify/ rows)
Need = Literal["id_network", "fid_extractor", "real_stats", "photos", "samples", "perceptual", "probes", "attacks"]


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

# Per-identity figures of `guide-ray verify` (columns of RUN/verify/<id>.parquet, not of result rows;
# a job does not list them under `metrics:`, it sets `verify:`). The reducer adds them to the tables
# when a run has verify rows.
_ATTACKS = frozenset({"id_network", "attacks"})
ID_WORST = MetricSpec(
    "ID_worst", "ID_worst", "lower", 4, _ATTACKS,
    "highest ID similarity any attack (re-inversion, pose sweep) gets out of G_u (worst case; >= ID)")
FORGOTTEN_RATE = MetricSpec(
    "forgotten_rate", "forgotten", "higher", 2, _ATTACKS,
    "share of verified identities whose ID_worst stays at or below the match threshold")
RELEARN_STEPS = MetricSpec(
    "relearn_steps", "relearn steps", "higher", 0, _ATTACKS,
    "PTI-style fine-tuning steps after which ID exceeds the threshold again (more = harder to re-learn)")
COLLATERAL_DRIFT = MetricSpec(
    "collateral_drift", "collateral drift", "lower", 4, _ATTACKS,
    "mean ID drift (1 - cos before/after) of a fixed seeded probe population of other identities")
COLLATERAL_SLOPE = MetricSpec(
    "collateral_slope_emb", "collateral slope", "lower", 4, _ATTACKS,
    "slope of probe drift on embedding distance to the forgotten identity (negative = damage stays local)")
DIVERSITY_RATIO = MetricSpec(
    "diversity_ratio", "diversity ratio", "higher", 3, _ATTACKS,
    "spread of G_u's probe renders over G_s's (1 = unchanged, < 1 = collapse towards one template)")
VERIFY_METRICS: tuple[MetricSpec, ...] = (ID_WORST, FORGOTTEN_RATE, RELEARN_STEPS, COLLATERAL_DRIFT,
                                          COLLATERAL_SLOPE, DIVERSITY_RATIO)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}
METRIC_NAMES: tuple[str, ...] = tuple(BY_NAME)
DEFAULT_METRICS: tuple[str, ...] = (ID.name, ID_OTHERS.name)


def metric(name: str) -> MetricSpec:
    """The spec of `name` (a result or a verify metric); ValueError with a did-you-mean otherwise."""
    known = {**BY_NAME, **{m.name: m for m in VERIFY_METRICS}}
    if name not in known:
        raise ValueError(f"unknown metric {name!r}{did_you_mean(name, tuple(known))}; choose from {', '.join(known)}")
    return known[name]


def needing(need: Need, names: tuple[str, ...] | list[str]) -> list[MetricSpec]:
    """The metrics among `names` that need `need`, in registry order."""
    wanted = set(names)
    return [m for m in METRICS if m.name in wanted and need in m.needs]
