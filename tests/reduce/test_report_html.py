"""The HTML report: table, per-identity cards with relative grid links, escaping, stand-in badges."""

from __future__ import annotations

from pathlib import Path

from rowfactory import make_row

from guide_ray.reduce.report import write_report
from guide_ray.store.results import commit_row, write_manifest_errors


def test_report_page(tmp_path: Path) -> None:
    (tmp_path / "artifacts" / "alice").mkdir(parents=True)
    (tmp_path / "artifacts" / "alice" / "grid.png").write_bytes(b"png")
    commit_row(tmp_path, make_row("alice", artifact_grid="artifacts/alice/grid.png", stand_in=True,
                                  id_views_unaligned=3))
    commit_row(tmp_path, make_row("bob", status="failed", error="ValueError: <script>bad</script>", ID=None))
    write_manifest_errors(tmp_path, [{"row": 4, "identity_id": "x y", "reason": "identity_id: bad & wrong"}])
    report = write_report(tmp_path)
    page = report.html.read_text()
    assert report.html == tmp_path / "report.html"
    assert "<img src='artifacts/alice/grid.png'" in page
    assert "† stand-in" in page and "not comparable to the paper" in page
    assert "&lt;script&gt;bad&lt;/script&gt;" in page and "<script>" not in page
    assert "row 4 (x y): identity_id: bad &amp; wrong" in page
    assert "<h2>Identities (2)</h2>" in page
    assert "0.1000" in page  # alice's ID on her card
    assert "<td>3 (no face found: ID-loss crop used)</td>" in page and page.count("unaligned ID renders") == 1
    assert (tmp_path / "tables" / "summary.md").read_text() == report.markdown
