"""What a search leaves in its output folder: the trial table, the best job, the plot, the page.

OUTPUT/trials.{parquet,csv,md}: one row per trial (every searched value, every reported metric,
status, whether it is GUIDE's default point and on the Pareto front). OUTPUT/best_job.yaml: the
best complete trial as a job `guide-ray run` accepts (the base job's manifest and metrics, the
trial's `guide:` values). OUTPUT/tune.png: forgetting (ID) against damage, Pareto front and
GUIDE's default marked. OUTPUT/tune.html shows all three. No torch, no ray.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from guide_ray.config.job import JobSpec
from guide_ray.config.metrics import LPIPS_DRIFT
from guide_ray.config.tune import TuneSpec, best_job, default_point
from guide_ray.reduce.report import PAGE_STYLE
from guide_ray.utils.files import atomic_file

TRIALS = "trials"
BEST_JOB = "best_job.yaml"
PLOT = "tune.png"
PAGE = "tune.html"


@dataclass(frozen=True)
class TuneOutputs:
    table: pd.DataFrame
    paths: dict[str, Path]
    best: dict | None       # the best trial's row (None when no trial completed)
    default: dict | None    # the row of GUIDE's default point (None when it was not run or not complete)
    markdown: str


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For each (forgetting, damage) point: True when no other point is at least as good in both and
    better in one (both minimised). NaN points are never on the front."""
    flags = []
    for i, (f, d) in enumerate(points):
        if math.isnan(f) or math.isnan(d):
            flags.append(False)
            continue
        dominated = any(f2 <= f and d2 <= d and (f2 < f or d2 < d)
                        for j, (f2, d2) in enumerate(points) if j != i and not math.isnan(f2 + d2))
        flags.append(not dominated)
    return flags


def trial_table(spec: TuneSpec, records: list[dict]) -> pd.DataFrame:
    """The records as a table with `is_default` and `pareto` (among complete trials) added."""
    table = pd.DataFrame.from_records([{k: _plain(v) for k, v in r.items()} for r in records])
    default = default_point(spec)
    table["is_default"] = [all(_same(r.get(k), v) for k, v in default.items()) for r in records]
    complete = table["status"] == "complete" if "status" in table else pd.Series(False, index=table.index)
    points = [(_f(r.get("forgetting")), _f(r.get("damage"))) if c else (math.nan, math.nan)
              for r, c in zip(records, complete, strict=True)]
    table["pareto"] = pareto_front(points)
    return table.sort_values("trial_id", kind="stable").reset_index(drop=True)


def pick_best(spec: TuneSpec, table: pd.DataFrame) -> dict | None:
    """Penalised: the lowest objective. Pareto: the lowest forgetting among feasible trials (the lowest
    objective if none is feasible). Only complete trials count (an ASHA-stopped trial saw fewer identities)."""
    rows = table[(table["status"] == "complete") & table["objective"].notna()] if "objective" in table else table[:0]
    if rows.empty:
        return None
    if spec.objective.mode == "pareto" and bool(rows["feasible"].any()):
        return rows[rows["feasible"].astype(bool)].sort_values("forgetting").iloc[0].to_dict()
    return rows.sort_values("objective").iloc[0].to_dict()


def write_outputs(spec: TuneSpec, base: JobSpec, records: list[dict]) -> TuneOutputs:
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = trial_table(spec, records)
    paths = {ext: out / f"{TRIALS}.{ext}" for ext in ("parquet", "csv", "md")}
    with atomic_file(paths["parquet"]) as tmp:
        table.to_parquet(tmp, index=False)
    table.to_csv(paths["csv"], index=False)
    best = pick_best(spec, table)
    defaults = table[table["is_default"] & (table["status"] == "complete")] if not table.empty else table
    default = defaults.iloc[0].to_dict() if not defaults.empty else None
    markdown = to_markdown(spec, table, best, default)
    paths["md"].write_text(markdown)
    if best is not None:
        overrides = {k: _plain(best[k]) for k in spec.space}
        job = best_job(base, overrides, f"{spec.name[:59]}-best", out / "best-run")
        header = (f"# Best trial {best['trial_id']} of the search {spec.name!r} (objective "
                  f"{best['objective']:.4g}); run it with `guide-ray run {BEST_JOB}`.\n")
        paths["best_job"] = out / BEST_JOB
        paths["best_job"].write_text(header + yaml.safe_dump(job, sort_keys=False))
    paths["plot"] = plot(spec, table, out / PLOT)
    paths["html"] = out / PAGE
    paths["html"].write_text(render_page(spec, table, markdown, paths))
    return TuneOutputs(table=table, paths=paths, best=best, default=default, markdown=markdown)


def to_markdown(spec: TuneSpec, table: pd.DataFrame, best: dict | None, default: dict | None) -> str:
    cols = ["trial_id", "status", *spec.space, "forgetting", "damage", "objective", "feasible",
            "identities_done", "is_default", "pareto"]
    cols = [c for c in cols if c in table]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    lines.append(f"\nforgetting = mean ID (with ID_others where measured), lower = more forgotten; damage = "
                 f"mean {spec.objective.damage}{_damage_basis(spec, table)} (bound {spec.objective.damage_bound}); "
                 f"objective = forgetting + {spec.objective.penalty} * max(0, damage - bound) / bound.")
    if best is not None:
        lines.append(f"\nBest: trial {best['trial_id']} ({_point(spec, best)}): {_scores(best)}.")
    if default is not None:
        lines.append(f"GUIDE's default ({_point(spec, default)}): {_scores(default)}.")
    if "stand_in" in table and bool(table["stand_in"].fillna(False).astype(bool).any()):
        lines.append("\n† computed with stand-in networks or an untrained generator: the numbers only show the "
                     "search working, not GUIDE's behaviour.")
    return "\n".join(lines) + "\n"


def plot(spec: TuneSpec, table: pd.DataFrame, path: Path) -> Path:
    """ID (forgetting) against damage: every complete trial, the Pareto front, GUIDE's default, the bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    done = table[table["status"] == "complete"] if "status" in table else table[:0]
    other = table[table["status"] != "complete"] if "status" in table else table[:0]
    if "damage" in done:
        ax.scatter(done["damage"], done["forgetting"], c="#888", label="trial", zorder=2)
        front = done[done["pareto"]].sort_values("damage")
        ax.plot(front["damage"], front["forgetting"], "-o", c="#c22", label="Pareto front", zorder=3)
        dflt = done[done["is_default"]]
        ax.scatter(dflt["damage"], dflt["forgetting"], marker="*", s=250, c="#1a6", label="GUIDE default", zorder=4)
    if "damage" in other and not other.empty:
        ax.scatter(other["damage"], other["forgetting"], marker="x", c="#999", label="stopped / failed", zorder=1)
    bound = spec.objective.damage_bound
    damages = pd.to_numeric(table["damage"], errors="coerce").dropna() if "damage" in table else pd.Series([])
    if damages.empty or bound <= 2 * damages.max():
        ax.axvline(bound, ls="--", c="#555", lw=1, label="damage bound")
    else:  # far right of every trial: a line there would squeeze the trials into one column
        ax.set_title(f"damage bound {bound:g} is beyond every trial", fontsize=8, loc="right")
    ax.set_xlabel(f"damage: {spec.objective.damage} (lower is better)")
    ax.set_ylabel("forgetting: ID (lower is better)")
    ax.set_title(f"search {spec.name}", loc="left")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def render_page(spec: TuneSpec, table: pd.DataFrame, markdown: str, paths: dict[str, Path]) -> str:
    notes = "".join(f"<p>{html.escape(line)}</p>" for line in markdown.split("\n\n", 1)[-1].splitlines() if line)
    best = (f"<p><a href='{BEST_JOB}'>{BEST_JOB}</a>: the best configuration as a job for "
            "<code>guide-ray run</code>.</p>") if "best_job" in paths else "<p>No trial completed.</p>"
    return "\n".join([
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)}</title>",
        f"<style>{PAGE_STYLE}</style></head><body><h1>GUIDE search: {html.escape(spec.name)}</h1>",
        f"<img src='{PLOT}' alt='forgetting against damage'>", notes, best,
        "<h2>Trials</h2>", table.to_html(index=False, escape=True, na_rep="–"), "</body></html>\n"])


def _damage_basis(spec: TuneSpec, table: pd.DataFrame) -> str:
    """' over 32 probe latents (seed 0)': what the trials' damage was measured on (their reports say)."""
    if "damage_samples" not in table or table["damage_samples"].dropna().empty:
        return ""
    reported = table.dropna(subset=["damage_samples"]).iloc[0]
    what = "probe latents" if spec.objective.damage == LPIPS_DRIFT.name else "samples per generator"
    return f" over {int(reported['damage_samples'])} {what} (seed {int(reported['damage_seed'])})"


def _scores(row: dict) -> str:
    return ", ".join(f"{k} {_cell(row[k])}" for k in ("forgetting", "damage", "objective"))


def _point(spec: TuneSpec, row: dict) -> str:
    return ", ".join(f"{k}={_cell(row[k])}" for k in spec.space)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _f(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and value is not None else math.nan


def _same(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _plain(value: object) -> object:
    """numpy scalars (from Ray's sampling or pandas) as Python values, so YAML and parquet take them."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict, str)) else value
