"""`guide-ray bench step|memory|throughput|scaling|concurrent --out DIR`: NAME.json, .md and .png in DIR.

benchmarks/RESULTS.md explains each table and the commands behind it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_JOB = Path(__file__).resolve().parents[2] / "jobs" / "quickstart.yaml"


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    return [int(t) for t in _csv(text)]


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCH")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, required=True, help="folder for NAME.json / NAME.md / NAME.png")
    world = argparse.ArgumentParser(add_help=False)
    world.add_argument("--preset", default="tiny", choices=["tiny", "world", "ffhq512-128"],
                       help="tiny: seeded random; world: the shipped trained world; ffhq512-128: seeded random")
    world.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    world.add_argument("--nets", choices=["standin", "random-real", "world"],
                       help="loss networks (default: standin on tiny, the world's on world, random-weight "
                            "LPIPS-VGG + IR-SE50 on ffhq512-128)")
    world.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    step = sub.add_parser("step", parents=[common, world], help="ours vs the official-order reference step")
    step.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up)")
    step.add_argument("--options", default="ours", help="comma-separated: ours, bf16, tf32, channels_last, compile, "
                      "grad_checkpoint, micro_batch=1, micro_batch=2, reference-per-term, ... "
                      "(the --reference always runs)")
    step.add_argument("--reference", default="reference", choices=["reference", "reference-per-term"],
                      help="what the ratios are against: the official one backward over the summed loss, or a "
                           "backward per term (the same renders and gradient, one term's graph alive at a time: "
                           "for hosts where the official peak does not fit)")
    step.add_argument("--no-profile", action="store_true", help="skip the per-stage profile")
    step.add_argument("--profile-only", action="store_true", help="only the per-stage profile, no timed variants")
    memory = sub.add_parser("memory", parents=[common, world], help="peak memory of one step per option")
    memory.add_argument("--options", default="reference,ours,micro_batch=2,micro_batch=1,grad_checkpoint,"
                        "micro_batch=1+grad_checkpoint")
    through = sub.add_parser("throughput", parents=[common], help="identities/hour through the engine")
    through.add_argument("--job", type=Path, default=DEFAULT_JOB, help="a job with a generated manifest")
    through.add_argument("--actors", default="1,2", help="actor counts to run, e.g. 1,2")
    through.add_argument("--identities", type=int, default=4, help="identities per run")
    through.add_argument("--iterations", type=int, help="override the job's guide.iterations")
    through.add_argument("--num-cpus", type=int, help="CPUs of the local Ray cluster")
    conc = sub.add_parser("concurrent", parents=[common, world], help="k identities at once on one device")
    conc.add_argument("--k", default="1,2,4", help="worker counts to try, e.g. 1,2,4,8")
    conc.add_argument("--steps", type=int, default=3, help="timed steps per worker")
    conc.add_argument("--iterations", type=int, default=1000, help="steps per identity for the extrapolation")
    scaling = sub.add_parser("scaling", parents=[common], help="identities/hour for N GPUs x M nodes, on paper")
    scaling.add_argument("--throughput", type=Path, help="throughput.json (default: OUT/throughput.json)")
    scaling.add_argument("--gpus", default="1,2,4,8")
    scaling.add_argument("--nodes", default="1,2,4")
    scaling.add_argument("--per-gpu", type=int, default=1, help="fractional actors per GPU (measured by gpu_check.sh)")
    scaling.add_argument("--driver-s", type=float, default=0.0, help="serial driver seconds per identity (0: no bound)")
    parser.set_defaults(handler=main)
    return parser


def main(args: argparse.Namespace) -> int:
    from guide_ray.errors import ConfigError

    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    handlers = {"step": _step, "memory": _memory, "throughput": _throughput, "scaling": _scaling,
                "concurrent": _concurrent}
    try:
        paths = handlers[args.bench](args)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        raise ConfigError(f"bench {args.bench}: {exc}") from exc
    print(Path(paths["md"]).read_text())
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


def _nets(args: argparse.Namespace) -> str:
    from guide_ray.bench.world import DEFAULT_NETS
    return args.nets or DEFAULT_NETS[args.preset]


def _step(args: argparse.Namespace) -> dict:
    from guide_ray.bench import step
    from guide_ray.bench.report import markdown_table, write_outputs
    from guide_ray.bench.world import build_world

    options = [n for n in _csv(args.options) if n != args.reference]
    for name in options:
        step.option_config(name)                      # unknown names fail before any model is built
    if args.profile_only and args.no_profile:
        raise SystemExit("bench step: --profile-only and --no-profile leave nothing to run")
    world = build_world(args.preset, args.device, _nets(args))
    summary = ({} if args.profile_only else
               step.summarize(step.time_variants(world, [args.reference, *options], args.steps), args.reference))
    profile = None if args.no_profile else step.profile_step(world)
    rows = [(n, v["median_s"], v["speedup_vs_reference"]) for n, v in summary.items()]
    md = markdown_table(["variant", "median s/step", f"× vs {args.reference}"], rows) if rows else ""
    if profile:
        md += (("\n\n" if md else "") + "Per-stage profile of one default step (s; `micro_batch`: its chunk size):\n\n"
               + markdown_table(list(profile), [list(profile.values())]))
    data = {"preset": args.preset, "device": args.device, "nets": _nets(args), "steps": args.steps,
            "reference": args.reference, "variants": summary, "profile": profile}

    def plot(ax):
        if rows:
            ax.bar([r[0] for r in rows], [r[1] for r in rows])
            ax.set_ylabel("median s / step")
        else:
            stages = {k: v for k, v in profile.items() if k not in ("total", "micro_batch")}
            ax.bar(list(stages), list(stages.values()))
            ax.set_ylabel("s in one default step")
        ax.set_title(f"GUIDE step, {args.preset} on {args.device}")
        ax.tick_params(axis="x", rotation=30)
    return write_outputs(args.out, "step", data, md, plot)


def _memory(args: argparse.Namespace) -> dict:
    from guide_ray.bench import memory, step
    from guide_ray.bench.report import markdown_table, write_outputs

    options = _csv(args.options)
    for name in options:
        step.option_config(name)
    rows = memory.measure(args.preset, options, args.device, _nets(args))
    header = ["option", "micro_batch", "peak RSS GiB", "RSS before step GiB", "CUDA peak GiB", "s", "error"]
    table = [(r["option"], r.get("micro_batch"), r.get("peak_rss_gib"), r.get("rss_before_step_gib"),
              r.get("cuda_peak_gib"), r.get("seconds"), r.get("error", "")) for r in rows]
    data = {"preset": args.preset, "device": args.device, "nets": _nets(args), "rows": rows}
    key = "cuda_peak_gib" if args.device.startswith("cuda") else "peak_rss_gib"

    def plot(ax):
        ok = [r for r in rows if r.get(key) is not None]
        ax.bar([r["option"] for r in ok], [r[key] for r in ok])
        ax.set_ylabel(key.replace("_", " "))
        ax.set_title(f"peak memory of one step, {args.preset}")
        ax.tick_params(axis="x", rotation=30)
    return write_outputs(args.out, "memory", data, markdown_table(header, table), plot)


def _throughput(args: argparse.Namespace) -> dict:
    from guide_ray.bench import throughput
    from guide_ray.bench.report import markdown_table, write_outputs
    from guide_ray.config.guide import apply_overrides
    from guide_ray.config.job import JobSpec, load_job

    job = load_job(args.job)
    if args.iterations is not None:
        guide = apply_overrides(job.guide, {"iterations": args.iterations})
        job = JobSpec.model_validate({**job.model_dump(mode="json"), "guide": guide.model_dump(mode="json")})
    statistics_s = throughput.warm_statistics(job, args.out.resolve())
    runs = [throughput.measure(job, n, args.identities, args.out.resolve(), args.num_cpus) for n in _ints(args.actors)]
    base = runs[0]["identities_per_hour"] or 1.0
    table = [(r["actors"], r["ok"], r["wall_s"], r["identities_per_hour"], round(r["identities_per_hour"] / base, 2),
              r["engine_overhead"], r["overhead_in_identities"], r["overhead_outside"], r["identity_s_median"],
              json.dumps(r["stage_s_mean"])) for r in runs]
    header = ["actors", "ok", "wall s", "identities/hour", "× 1st run", "engine overhead", "of it: in identities",
              "of it: outside", "s/identity", "mean stage s"]
    data = {"job": str(args.job), "runs": runs, "pretrained_statistics_s": statistics_s}

    def plot(ax):
        ax.plot([r["actors"] for r in runs], [r["identities_per_hour"] for r in runs], marker="o")
        ax.set_xlabel("actors")
        ax.set_ylabel("identities / hour")
        ax.set_title(f"throughput, {job.name} ({job.guide.iterations} steps)")
    md = markdown_table(header, table) + (f"\n\nPretrained FID statistics, computed once before the timed runs into "
                                          f"their shared cache (not in any run's wall): {statistics_s} s.")
    return write_outputs(args.out, "throughput", data, md, plot)


def _concurrent(args: argparse.Namespace) -> dict:
    from guide_ray.bench import concurrent
    from guide_ray.bench.report import markdown_table, write_outputs

    runs = [concurrent.run_k(k, args.preset, args.device, _nets(args), args.steps, args.out / "concurrent-work",
                             args.iterations) for k in _ints(args.k)]
    header = ["workers", "ok", "s/step each", "min/identity", "identities/hour total", "CUDA peak GiB each"]
    table = [(r["k"], r["ok"], r.get("median_s_per_step"), r.get("min_per_identity"), r.get("identities_per_hour"),
              r.get("cuda_peak_gib_per_worker")) for r in runs]
    data = {"preset": args.preset, "device": args.device, "nets": _nets(args), "iterations": args.iterations,
            "runs": runs}

    def plot(ax):
        ok = [r for r in runs if "identities_per_hour" in r]
        ax.plot([r["k"] for r in ok], [r["identities_per_hour"] for r in ok], marker="o")
        ax.set_xlabel("identities at once on one device")
        ax.set_ylabel(f"identities / hour ({args.iterations} steps)")
    return write_outputs(args.out, "concurrent", data, markdown_table(header, table), plot)


def _scaling(args: argparse.Namespace) -> dict:
    from guide_ray.bench import scaling
    from guide_ray.bench.report import markdown_table, write_outputs

    source = args.throughput or args.out / "throughput.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: run `guide-ray bench throughput --out {args.out}` first")
    runs = {r["actors"]: r for r in json.loads(source.read_text())["runs"]}
    if 1 not in runs:
        raise ValueError(f"{source} has no 1-actor run; the model is calibrated on it")
    costs = scaling.costs_from_runs(runs[1], runs.get(2), args.driver_s)
    grid = [scaling.rate_per_hour(costs, g, m, args.per_gpu) for m in _ints(args.nodes) for g in _ints(args.gpus)]
    checks = [{"actors": n, "measured_wall_s": r["wall_s"],
               "model_wall_s": round(scaling.predicted_wall(costs, r["ok"], n), 2)} for n, r in runs.items()]
    md = markdown_table(["nodes", "GPUs/node", "actors/GPU", "identities/hour", "bound"],
                        [(g["nodes"], g["gpus"], g["per_gpu"], g["identities_per_hour"], g["bound"]) for g in grid])
    md += "\n\nCheck against the measured runs:\n\n" + markdown_table(
        ["actors", "measured wall s", "model wall s"], [list(c.values()) for c in checks])
    data = {"source": str(source), "costs": vars(costs), "grid": grid, "checks": checks}

    def plot(ax):
        for m in _ints(args.nodes):
            pts = [g for g in grid if g["nodes"] == m]
            ax.plot([g["gpus"] for g in pts], [g["identities_per_hour"] for g in pts], marker="o", label=f"{m} node(s)")
        ax.set_xlabel("GPUs per node")
        ax.set_ylabel("identities / hour (model)")
        ax.legend()
    return write_outputs(args.out, "scaling", data, md, plot)
