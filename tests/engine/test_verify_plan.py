"""Planning a verification without Ray: settings, thresholds and keys."""

from __future__ import annotations

import pytest

from guide_ray.config.job import JobSpec
from guide_ray.config.verify import VerifySpec
from guide_ray.engine.verify import VerifyOptions, verify_key, verify_spec
from guide_ray.errors import ConfigError


def _job(backend: str, **changes: object) -> JobSpec:
    return JobSpec.model_validate({"name": "t", "manifest": "m.parquet", "output_dir": "run",
                                   "model": {"backend": backend}, **changes})


def test_a_real_backend_needs_a_user_threshold() -> None:
    with pytest.raises(ConfigError, match="'eg3d-ffhq512-128' has no population of distinct identities.*--threshold"):
        verify_spec(_job("eg3d-ffhq512-128"), VerifyOptions())
    spec = verify_spec(_job("eg3d-ffhq512-128"), VerifyOptions(threshold=0.35))
    assert spec.threshold == 0.35 and spec.threshold_source == "user"


def test_the_job_settings_apply_and_the_cli_threshold_wins() -> None:
    job = _job("tiny", verify={"attack_steps": 7, "threshold": 0.2})
    assert verify_spec(job, VerifyOptions()).attack_steps == 7
    assert verify_spec(job, VerifyOptions(threshold=0.4)).threshold == 0.4
    assert verify_spec(_job("tiny"), VerifyOptions()).threshold_source == "far=0.001 over 64 identities, max(view-mean, best-pose)"


def test_calibration_needs_enough_pairs() -> None:
    with pytest.raises(ValueError, match="calibration_identities=10 gives 45 pairs, fewer than 1/far = 1000"):
        VerifySpec(calibration_identities=10)
    assert VerifySpec(calibration_identities=10, threshold=0.3).threshold == 0.3   # no calibration then


def test_verify_key_follows_the_result_row_and_the_settings() -> None:
    spec = VerifySpec()
    assert verify_key("a" * 16, spec) == verify_key("a" * 16, VerifySpec())
    assert verify_key("a" * 16, spec) != verify_key("b" * 16, spec)
    assert verify_key("a" * 16, spec) != verify_key("a" * 16, VerifySpec(attack_steps=5))
    assert len(verify_key("a" * 16, spec)) == 16
