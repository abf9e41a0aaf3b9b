"""Per-identity rows → the paper's Table 1 (and Table 6 for GUIDE-SG2): mean ± std of each metric
per backend × scenario × variant.

`summarize` is a pure function (rows in, DataFrame out) so it is tested without files;
`write_tables` adds RUN/tables/summary.{parquet,csv,md}. Means and standard deviations are over
`ok` rows only (failed rows are counted, not averaged); std is the sample std (ddof=1), blank
for a single identity. Headers, directions and decimals come from the metric registry
(guide_ray.config.metrics); the paper's four metrics are all lower-is-better (↓). No torch, no ray.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from guide_ray.config.backends import BACKEND_NAMES
from guide_ray.config.metrics import FORGOTTEN_RATE, RELEARN_STEPS, VERIFY_METRICS
from guide_ray.config.metrics import METRICS as METRIC_SPECS
from guide_ray.store.results import iter_rows, read_manifest_errors
from guide_ray.store.schema import ResultRow
from guide_ray.store.verify import VerifyRow, load_verify_rows

# (row column, table header, decimals), in registry order: the paper's Table 1 columns
METRICS = tuple((m.column, m.header, m.decimals) for m in METRIC_SPECS)
SCENARIO_ORDER = ("random", "ffhq", "celebahq", "world_in_domain", "world_ood", "custom")  # Random, InD, OOD, …
VARIANT_ORDER = ("baseline", "extrapolated", "extrapolated+adj", "guide")  # the paper's rows, top to bottom
STAND_IN_MARK = "†"
# the verify figures the tables add when a run has verify rows (guide-ray verify)
VERIFY_COLUMNS = tuple((m.column, m.header, m.decimals) for m in VERIFY_METRICS)
GROUP = ["backend", "scenario", "variant"]
SUMMARY_COLUMNS = (
    ["backend", "scenario", "variant"]
    + [f"{m}_{stat}" for m, _, _ in METRICS for stat in ("mean", "std", "n")]
    + ["minutes_mean", "minutes_std", "ok", "failed", "stand_in"]
)


def rows_frame(rows: Iterable[ResultRow]) -> pd.DataFrame:
    """Rows as a DataFrame with the ResultRow columns (empty frame with those columns if no rows)."""
    records = [r.model_dump() for r in rows]
    return pd.DataFrame.from_records(records, columns=list(ResultRow.model_fields))


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (backend, scenario, variant): backends in registry order, then the paper's order;
    numeric mean/std/n per metric, counts, stand-in flag. Backends are never pooled: EG3D and
    GUIDE-SG2 numbers are different experiments (the paper's Tables 1 and 6)."""
    out = []
    for (backend, scenario, variant), group in frame.groupby(["backend", "scenario", "variant"], sort=False):
        ok = group[group["status"] == "ok"]
        record: dict[str, object] = {"backend": backend, "scenario": scenario, "variant": variant}
        for metric, _, _ in METRICS:
            values = pd.to_numeric(ok[metric], errors="raise").dropna()
            record |= {f"{metric}_mean": values.mean(), f"{metric}_std": values.std(ddof=1), f"{metric}_n": len(values)}
        minutes = ok["seconds"].astype(float) / 60.0
        record |= {"minutes_mean": minutes.mean(), "minutes_std": minutes.std(ddof=1),
                   "ok": len(ok), "failed": int((group["status"] == "failed").sum()),
                   "stand_in": bool(group["stand_in"].any())}
        out.append(record)
    summary = pd.DataFrame.from_records(out, columns=SUMMARY_COLUMNS)
    if summary.empty:
        return summary
    order = summary.apply(lambda r: (_rank(r["backend"], BACKEND_NAMES), r["backend"],
                                     _rank(r["scenario"], SCENARIO_ORDER), _rank(r["variant"], VARIANT_ORDER),
                                     r["scenario"], r["variant"]), axis=1)
    return summary.loc[order.sort_values().index].reset_index(drop=True)


def _rank(value: str, order: tuple[str, ...]) -> int:
    return order.index(value) if value in order else len(order)


def format_cell(mean: float, std: float, decimals: int) -> str:
    """'0.0183 ± 0.0021'; just the mean for one sample; '–' when nothing was measured."""
    if mean is None or math.isnan(mean):
        return "–"
    if std is None or math.isnan(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def summarize_verify(rows: Iterable[VerifyRow]) -> pd.DataFrame:
    """Verify rows → one row per (backend, scenario, variant): mean/std/n of each verify figure over ok
    rows; forgotten_rate = share of `forgotten` verdicts; relearn_steps over the identities that
    were re-learned, with `relearn_not_within` counting those that were not within the budget."""
    frame = pd.DataFrame.from_records([r.model_dump() for r in rows], columns=list(VerifyRow.model_fields))
    out = []
    for keys, group in frame.groupby(GROUP, sort=False):
        ok = group[group["status"] == "ok"]
        record: dict[str, object] = dict(zip(GROUP, keys, strict=True))
        ok = ok.assign(**{FORGOTTEN_RATE.column: (ok["verdict"] == "forgotten").astype(float)})
        for column, _, _ in VERIFY_COLUMNS:
            values = pd.to_numeric(ok[column], errors="raise").dropna()
            record |= {f"{column}_mean": values.mean(), f"{column}_std": values.std(ddof=1), f"{column}_n": len(values)}
        record[f"{FORGOTTEN_RATE.column}_std"] = float("nan")    # a rate, not a spread over identities
        record |= {"relearn_not_within": int(ok[RELEARN_STEPS.column].isna().sum()), "verified": len(ok),
                   "verify_failed": int((group["status"] == "failed").sum())}
        out.append(record)
    return pd.DataFrame.from_records(out)


def with_verify(summary: pd.DataFrame, verify: pd.DataFrame) -> pd.DataFrame:
    """The summary with the verify columns joined on (backend, scenario, variant); unchanged without any."""
    if verify.empty:
        return summary
    return summary.merge(verify, on=GROUP, how="left")


def _verify_cell(r: pd.Series, column: str, decimals: int) -> str:
    cell = format_cell(r[f"{column}_mean"], r[f"{column}_std"], decimals)
    if column == RELEARN_STEPS.column and r["relearn_not_within"] and not math.isnan(r["relearn_not_within"]):
        cell += f" ({int(r['relearn_not_within'])} not within budget)"
    return cell


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human table (strings): Backend | Scenario | Method | ID ↓ | … | min/identity | ok | failed,
    with the verify columns after the metrics when the summary has them."""
    verified = "verified" in summary.columns
    records = []
    for _, r in summary.iterrows():
        method = r["variant"] + (f" {STAND_IN_MARK}" if r["stand_in"] else "")
        rec = {"Backend": r["backend"], "Scenario": r["scenario"], "Method": method}
        for metric, header, decimals in METRICS:
            rec[header] = format_cell(r[f"{metric}_mean"], r[f"{metric}_std"], decimals)
        for column, header, decimals in VERIFY_COLUMNS if verified else ():
            rec[header] = _verify_cell(r, column, decimals)
        rec["min/identity"] = format_cell(r["minutes_mean"], r["minutes_std"], 1)
        rec |= {"ok": int(r["ok"]), "failed": int(r["failed"])}
        records.append(rec)
    extra = [h for _, h, _ in VERIFY_COLUMNS] if verified else []
    headers = ["Backend", "Scenario", "Method", *(h for _, h, _ in METRICS), *extra, "min/identity", "ok", "failed"]
    return pd.DataFrame.from_records(records, columns=headers)


def to_markdown(summary: pd.DataFrame, invalid_rows: int = 0) -> str:
    """GitHub markdown of `display_table`, with the stand-in and invalid-row footnotes."""
    table = display_table(summary)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(str(v) for v in rec) + " |" for rec in table.itertuples(index=False)]
    if table.empty:
        lines.append("\n_No results yet._")
    if not summary.empty and bool(summary["stand_in"].any()):
        lines.append(f"\n{STAND_IN_MARK} computed with stand-in networks or generator: not comparable to the paper.")
    if invalid_rows:
        lines.append(f"\n{invalid_rows} manifest row(s) were rejected; see manifest_errors.json.")
    return "\n".join(lines) + "\n"


def write_tables(run_dir: Path, rows: Iterable[ResultRow] | None = None,
                 verify_rows: Iterable[VerifyRow] | None = None) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Summarize `rows` (default: every committed row of `run_dir`) and the verify rows (default: the
    run's) into RUN/tables/summary.{parquet,csv,md}."""
    summary = summarize(rows_frame(iter_rows(run_dir) if rows is None else rows))
    verify = summarize_verify(load_verify_rows(run_dir) if verify_rows is None else verify_rows)
    summary = with_verify(summary, verify)
    folder = run_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"summary.{ext}" for ext in ("parquet", "csv", "md")}
    summary.to_parquet(paths["parquet"], index=False)
    summary.to_csv(paths["csv"], index=False)
    paths["md"].write_text(to_markdown(summary, len(read_manifest_errors(run_dir))))
    return summary, paths
