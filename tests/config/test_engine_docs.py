"""docs/engine.md's job-spec reference is the generated one (regenerate with reference_markdown())."""

from __future__ import annotations

from pathlib import Path

from guide_ray.config.job import reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "engine.md"


def test_job_reference_is_current() -> None:
    text = DOC.read_text()
    section = text.split("<!-- job-reference:start -->\n", 1)[1].split("<!-- job-reference:end -->", 1)[0]
    assert section == reference_markdown(), "regenerate the table: python -c 'from guide_ray.config.job import reference_markdown as r; print(r())'"


def test_reference_lists_nested_keys() -> None:
    table = reference_markdown()
    for key in ("`resources.gpus_per_actor`", "`fid.num_samples`", "`model.backend`", "`max_attempts`"):
        assert key in table
