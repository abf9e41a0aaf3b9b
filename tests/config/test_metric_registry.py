"""One metric registry: every consumer reads guide_ray.config.metrics; no module spells a metric name."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from guide_ray.config import metrics as registry
from guide_ray.config.job import JobSpec
from guide_ray.models import weights as weight_registry
from guide_ray.reduce.tables import METRICS as TABLE_METRICS
from guide_ray.store.schema import RESULT_SCHEMA, ResultRow

PACKAGE = Path(__file__).resolve().parents[2] / "guide_ray"


def test_registry_entries_are_complete() -> None:
    # the paper's Table 1, then the cheap damage proxy of `guide-ray tune`
    assert registry.METRIC_NAMES == ("ID", "ID_others", "FID_pre", "delta_FID_real", "LPIPS_drift")
    for m in registry.METRICS:
        assert m.direction in ("lower", "higher") and m.decimals >= 0 and m.needs and m.description
        assert m.header.startswith(m.display) and m.header.endswith("↓" if m.direction == "lower" else "↑")
    assert registry.metric("FID_pre") is registry.FID_PRE
    with pytest.raises(ValueError, match="did you mean 'FID_pre'"):
        registry.metric("FID_pr")


def test_job_schema_reducer_and_weights_read_the_registry() -> None:
    allowed = typing.get_args(typing.get_args(JobSpec.model_fields["metrics"].annotation)[0])
    assert allowed == registry.METRIC_NAMES
    with pytest.raises(ValidationError, match="delta_FID_real"):
        JobSpec(name="t", manifest="m", output_dir="o", metrics=["FID"])
    columns = [m.column for m in registry.METRICS]
    assert [c for c in ResultRow.model_fields if c in columns] == columns
    assert all(RESULT_SCHEMA.field(c).nullable for c in columns)
    assert [(c, h, d) for c, h, d in TABLE_METRICS] == [(m.column, m.header, m.decimals) for m in registry.METRICS]
    # what a metric needs decides the files: FID_pre needs no real features, delta_FID_real does
    pre = weight_registry.needed_files("eg3d-ffhq512-128", metrics=[registry.FID_PRE.name])
    real = weight_registry.needed_files("eg3d-ffhq512-128", metrics=[registry.DELTA_FID_REAL.name])
    assert weight_registry.FFHQ_FEATS not in pre and weight_registry.FFHQ_FEATS in real
    # LPIPS_drift reads only the perceptual loss network every run loads anyway
    assert weight_registry.needed_files("eg3d-ffhq512-128", metrics=[registry.LPIPS_DRIFT.name]) == \
        weight_registry.needed_files("eg3d-ffhq512-128")


def _string_constants(path: Path) -> list[tuple[str, int]]:
    return [(node.value, node.lineno) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_metric_name_is_spelt_outside_the_registry(path: Path) -> None:
    if path == PACKAGE / "config" / "metrics.py":
        return
    spelt = [(value, line) for value, line in _string_constants(path) if value in registry.METRIC_NAMES]
    assert not spelt, f"{path.relative_to(PACKAGE)} spells metric names {spelt}; read guide_ray.config.metrics"


def test_the_literal_checker_sees_a_spelt_name(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text('x = {"FID_pre": 1}\ny = "FID_pre is fine inside a sentence"\n')
    assert [v for v, _ in _string_constants(tmp_path / "m.py") if v in registry.METRIC_NAMES] == ["FID_pre"]
