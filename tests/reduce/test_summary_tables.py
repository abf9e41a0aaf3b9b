"""Reducer: mean ± std per scenario × variant in paper order, failures counted, stand-ins marked."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from rowfactory import make_row

from guide_ray.reduce.tables import format_cell, rows_frame, summarize, to_markdown, write_tables
from guide_ray.store.results import commit_row, write_manifest_errors


def _rows() -> list:
    return [
        make_row("g1", ID=0.10, FID_pre=5.0, seconds=60.0),
        make_row("g2", ID=0.20, FID_pre=7.0, seconds=180.0),
        make_row("g3", status="failed", error="E: x", ID=None, FID_pre=None, seconds=999.0),
        make_row("b1", variant="baseline", ID=0.50, seconds=120.0),
        make_row("c1", scenario="celebahq", ID=0.3, ID_others=0.4, stand_in=True),
        make_row("f1", scenario="ffhq", variant="extrapolated+adj", ID=0.25),
    ]


def test_statistics_over_ok_rows_only() -> None:
    summary = summarize(rows_frame(_rows()))
    guide = summary[(summary.scenario == "random") & (summary.variant == "guide")].iloc[0]
    assert guide["ID_mean"] == pytest.approx(0.15)
    assert guide["ID_std"] == pytest.approx(0.0707106781)  # sample std of (0.1, 0.2)
    assert guide["FID_pre_mean"] == pytest.approx(6.0) and guide["FID_pre_n"] == 2
    assert guide["minutes_mean"] == pytest.approx(2.0)  # the failed row's 999 s is not averaged
    assert (guide["ok"], guide["failed"]) == (2, 1)
    assert math.isnan(guide["delta_FID_real_mean"]) and guide["delta_FID_real_n"] == 0


def test_rows_follow_the_papers_order() -> None:
    summary = summarize(rows_frame(reversed(_rows())))
    assert list(zip(summary.scenario, summary.variant, strict=True)) == [
        ("random", "baseline"), ("random", "guide"), ("ffhq", "extrapolated+adj"), ("celebahq", "guide")]


def test_backends_are_never_pooled() -> None:
    """EG3D and GUIDE-SG2 rows of one scenario × variant stay separate, backends in registry order."""
    rows = [make_row("s1", backend="stylegan2-tiny", ID=0.9), make_row("t1", ID=0.1), make_row("t2", ID=0.3),
            make_row("s2", backend="stylegan2-tiny", ID=0.7)]
    summary = summarize(rows_frame(rows))
    assert list(summary.backend) == ["tiny", "stylegan2-tiny"]
    assert summary.ID_mean.tolist() == pytest.approx([0.2, 0.8]) and summary.ok.tolist() == [2, 2]
    assert "| stylegan2-tiny | random | guide | 0.8000 ± 0.1414 |" in to_markdown(summary)


def test_markdown_marks_stand_ins_and_formats_cells() -> None:
    md = to_markdown(summarize(rows_frame(_rows())), invalid_rows=2)
    lines = md.splitlines()
    assert lines[0] == ("| Backend | Scenario | Method | ID ↓ | ID_others ↓ | FID_pre ↓ | ΔFID_real ↓ | LPIPS_drift ↓ "
                        "| min/identity | ok | failed |")
    assert "| tiny | random | guide | 0.1500 ± 0.0707 | – | 6.000 ± 1.414 | – | – | 2.0 ± 1.4 | 2 | 1 |" in lines
    assert "| tiny | celebahq | guide † | 0.3000 | 0.4000 | – | – | – | 1.0 | 1 | 0 |" in lines
    assert "† computed with stand-in networks" in md and "2 manifest row(s) were rejected" in md


def test_format_cell() -> None:
    assert format_cell(0.0183, 0.0021, 4) == "0.0183 ± 0.0021"
    assert format_cell(0.5, float("nan"), 4) == "0.5000"
    assert format_cell(float("nan"), float("nan"), 3) == "–"


def test_empty_run() -> None:
    summary = summarize(rows_frame([]))
    assert summary.empty and "No results yet" in to_markdown(summary)


def test_write_tables(tmp_path: Path) -> None:
    for row in _rows():
        commit_row(tmp_path, row)
    write_manifest_errors(tmp_path, [{"row": 0, "identity_id": None, "reason": "x"}])
    summary, paths = write_tables(tmp_path)
    assert set(paths) == {"parquet", "csv", "md"}
    pd.testing.assert_frame_equal(pd.read_parquet(paths["parquet"]), summary)
    assert pd.read_csv(paths["csv"])["ok"].tolist() == summary["ok"].tolist()
    assert "1 manifest row(s) were rejected" in paths["md"].read_text()
