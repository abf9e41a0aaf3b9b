"""`guide-ray report RUN`: summary tables plus RUN/report.html, a static page to browse a run.

The page shows the Table-1 summary, rejected manifest rows, and one card per identity with its
before/after grid (a relative link, so the run folder can be copied or served as is), metrics,
and the error of failed identities. Rows computed with stand-in networks are marked (†) in the
table and badged on their card: such numbers are not comparable to the paper.
No torch, no ray.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from guide_ray.reduce.tables import METRICS, STAND_IN_MARK, display_table, format_cell, write_tables
from guide_ray.store.results import QUARANTINE, QUARANTINE_LOG, load_rows, read_manifest_errors
from guide_ray.store.schema import ResultRow
from guide_ray.store.verify import VerifyRow, load_verify_rows

REPORT = "report.html"
# shared by report.html and tune.html
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 0.6em; width: 420px; }
.card img { max-width: 100%; } .failed { background: #fff0f0; } .badge { color: #a60; font-weight: bold; }
pre { white-space: pre-wrap; font-size: 0.85em; }
"""


@dataclass(frozen=True)
class ReportPaths:
    """Everything `write_report` wrote."""

    html: Path
    tables: dict[str, Path]
    markdown: str
    quarantined: int = 0  # damaged result files this call moved to RUN/quarantine/


def write_report(run_dir: Path) -> ReportPaths:
    """Write RUN/tables/summary.* and RUN/report.html from the committed rows of `run_dir`.

    Damaged result files are quarantined first (store.results.load_rows), so no identity is
    counted twice and one bad file never stops the report; the markdown says how many.
    """
    loaded = load_rows(run_dir)
    verified = load_verify_rows(run_dir)
    summary, tables = write_tables(run_dir, loaded.rows, verified)
    errors = read_manifest_errors(run_dir)
    page = render_page(run_dir.name, summary, loaded.rows, errors, verified)
    path = run_dir / REPORT
    path.write_text(page)
    markdown = tables["md"].read_text()
    if loaded.quarantined:
        markdown += (f"\n{len(loaded.quarantined)} damaged result file(s) moved to {QUARANTINE}/ (reasons in "
                     f"{QUARANTINE}/{QUARANTINE_LOG}); re-run the job to compute those identities again.\n")
    return ReportPaths(html=path, tables=tables, markdown=markdown, quarantined=len(loaded.quarantined))


def render_page(title: str, summary: pd.DataFrame, rows: list[ResultRow], errors: list[dict[str, object]],
                verified: list[VerifyRow] | None = None) -> str:
    """The whole HTML page as a string (pure; every user-supplied string escaped)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{PAGE_STYLE}</style></head><body><h1>GUIDE unlearning run: {_e(title)}</h1>",
             "<h2>Summary (mean ± std over ok identities; ↓ lower is better, ↑ higher)</h2>",
             display_table(summary).to_html(index=False, escape=True, na_rep="–")]
    if not summary.empty and bool(summary["stand_in"].any()):
        parts.append(f"<p class='badge'>{STAND_IN_MARK} computed with stand-in networks or generator: "
                     "not comparable to the paper.</p>")
    if errors:
        items = "".join(
            f"<li>row {_e(e['row'])} ({_e(e['identity_id'] or '?')}): {_e(e['reason'])}</li>" for e in errors
        )
        parts.append(f"<h2>Rejected manifest rows ({len(errors)})</h2><ul>{items}</ul>")
    if verified:
        parts.append(f"<h2>Verification under attack ({len(verified)}; docs/verify.md)</h2><div class='cards'>")
        parts += [_verify_card(row) for row in verified]
        parts.append("</div>")
    parts.append(f"<h2>Identities ({len(rows)})</h2><div class='cards'>")
    parts += [_card(row) for row in rows]
    parts.append("</div></body></html>\n")
    return "\n".join(parts)


def _card(row: ResultRow) -> str:
    metrics = "".join(
        f"<tr><th>{_e(header)}</th><td>{format_cell(_num(getattr(row, name)), float('nan'), decimals)}</td></tr>"
        for name, header, decimals in METRICS
    )
    badge = f" <span class='badge'>{STAND_IN_MARK} stand-in</span>" if row.stand_in else ""
    grid = ""
    if row.artifact_grid:
        grid = f"<img src='{_e(row.artifact_grid)}' alt='before/after grid of {_e(row.identity_id)}'>"
    error = f"<pre>{_e(row.error)}</pre>" if row.error else ""
    if row.id_views_unaligned:
        metrics += (f"<tr><th>unaligned ID renders</th><td>{row.id_views_unaligned} "
                    "(no face found: ID-loss crop used)</td></tr>")
    return (
        f"<div class='card {_e(row.status)}'><h3>{_e(row.identity_id)}{badge}</h3>"
        f"<p>{_e(row.backend)} · {_e(row.scenario)} · {_e(row.variant)} · seed {row.seed} · {_e(row.status)} · "
        f"{row.seconds / 60:.1f} min · {_e(row.device)}</p>{grid}<table>{metrics}</table>{error}</div>"
    )


def _verify_card(row: VerifyRow) -> str:
    """The best attack's reconstruction beside the source, the collateral plot, and the row's evidence."""
    images = "".join(f"<img src='{_e(p)}' alt='{_e(what)} of {_e(row.identity_id)}'>"
                     for what, p in (("best attack", row.artifact_attack), ("collateral plot", row.artifact_collateral))
                     if p)
    relearn = ("not within " + str(row.relearn_budget) + " steps") if row.relearn_steps is None else row.relearn_steps
    facts = [("verdict", row.verdict), ("ID (same latent)", _fmt(row.ID)), ("ID_worst", _fmt(row.ID_worst)),
             ("worst attack", row.attack_worst), ("other photos, worst", _fmt(row.ID_others_worst)),
             ("threshold", f"{_fmt(row.threshold)} ({row.threshold_source})"), ("re-learning steps", relearn),
             ("collateral drift / slope", f"{_fmt(row.collateral_drift)} / {_fmt(row.collateral_slope_emb)}"),
             ("diversity ratio", _fmt(row.diversity_ratio)), ("attack budget", f"{row.attack_steps} steps per start")]
    table = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if row.status == "ok")
    badge = f" <span class='badge'>{STAND_IN_MARK} stand-in</span>" if row.stand_in else ""
    error = f"<pre>{_e(row.error)}</pre>" if row.error else ""
    return (f"<div class='card {_e(row.status)}'><h3>{_e(row.identity_id)}{badge}</h3>"
            f"<p>{_e(row.variant)} · {_e(row.status)}</p>{images}<table>{table}</table>{error}</div>")


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _num(value: float | None) -> float:
    return float("nan") if value is None else value


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
