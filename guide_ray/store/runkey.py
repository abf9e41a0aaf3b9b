"""run_key: the fingerprint that decides whether a committed row can be reused on resume.

Two levels, both sha256 of canonical JSON (config.base.fingerprint), cut to 16 hex digits:

* `job_key` covers what every identity of a job shares: model backend, the weights' fingerprint,
  the metrics and their sample settings (FID samples, LPIPS_drift probes), and the code version.
* `item_run_key` = job_key + what only this identity has: scenario, source and other images (the
  manifest strings, as written), seed, variant, the *effective* GuideConfig after the variant
  and the row's overrides, and the encoder's weights for identities inverted from a photo.

Why per item: a manifest grows and gets edited. Keying per item means appending rows or fixing
one row's override recomputes exactly the identities whose inputs changed, while a change to the
job (weights, base config, metrics, version) changes every key. Paths, the output folder,
resources and retry settings are deliberately left out: they do not change results.
No torch, no ray.
"""

from __future__ import annotations

from guide_ray.config.base import fingerprint
from guide_ray.config.guide import GuideConfig
from guide_ray.config.job import FID_METRICS, PROBE_METRICS, JobSpec
from guide_ray.config.manifest import ManifestRow

KEY_LENGTH = 16


def job_key(job: JobSpec, weights_fingerprint: str, code_version: str) -> str:
    """The per-job part of every run_key (see module docstring for what is in and out)."""
    uses_fid = any(m in FID_METRICS for m in job.metrics)
    payload = {
        "backend": job.model.backend,
        "weights": weights_fingerprint,
        "metrics": sorted(job.metrics),
        "fid": job.fid.model_dump(mode="json") if uses_fid else None,
        "code_version": code_version,
    }
    if any(m in PROBE_METRICS for m in job.metrics):   # only then: earlier jobs keep their keys
        payload["lpips_drift"] = job.lpips_drift.model_dump(mode="json")
    return fingerprint(payload)[:KEY_LENGTH]


def item_run_key(
    job_key_: str, row: ManifestRow, variant: str, guide: GuideConfig, *, encoder: str | None = None
) -> str:
    """run_key of one identity: `job_key_` plus the row's inputs and its effective config.

    `encoder` is the inversion encoder's weights fingerprint, given only for identities that are
    inverted from a photo (so a random-only run does not depend on the encoder file).
    """
    payload = {
        "job_key": job_key_,
        "encoder": encoder,
        "scenario": row.scenario,
        "source": row.source,
        "other_images": list(row.other_images),
        "seed": row.seed,
        "variant": variant,
        "guide": guide.model_dump(mode="json"),
    }
    return fingerprint(payload)[:KEY_LENGTH]
