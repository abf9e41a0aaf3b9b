"""One benchmark's output: NAME.json (everything measured, with the machine and the command),
NAME.md (the table a human reads) and NAME.png (its plot)."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

from guide_ray import __version__
from guide_ray.utils.files import atomic_file


def machine() -> dict[str, object]:
    """What the numbers depend on: CPU/GPU, threads, versions, and the command that produced them."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": platform.python_version(), "torch": torch.__version__, "guide_ray": __version__,
            "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "gpu": gpu, "command": " ".join(sys.argv)}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out: Path, name: str, data: dict, markdown: str, plot) -> dict[str, Path]:
    """Write out/NAME.{json,md,png}; `plot(ax)` draws on a matplotlib Axes. → the three paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{name}.{ext}" for ext in ("json", "md", "png")}
    record = {"benchmark": name, "machine": machine(), **data}
    with atomic_file(paths["json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    env = record["machine"]
    footer = (f"\n\nMachine: {env['cpu']}, {env['cpus']} CPUs, {env['torch_threads']} torch threads, "
              f"GPU {env['gpu']}; torch {env['torch']}, guide_ray {env['guide_ray']}.\nCommand: `{env['command']}`\n")
    with atomic_file(paths["md"]) as tmp:
        tmp.write_text(f"# {name}\n\n{markdown}{footer}")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plot(ax)
    fig.tight_layout()
    with atomic_file(paths["png"]) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return paths
