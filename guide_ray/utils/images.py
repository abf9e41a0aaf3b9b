"""Image helpers for artifacts: 8-bit quantisation as GUIDE saved PNGs, grids, a loss curve."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor


def quantize_like_png(img: Tensor) -> Tensor:
    """[B, 3, H, W] in [-1, 1] → uint8, as GUIDE wrote PNGs: x·127.5 + 128, clamp, truncate."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def dequantize(img: Tensor) -> Tensor:
    """uint8 [B, 3, H, W] → float in [-1, 1] (what a network reads back from the PNG)."""
    return (img.float() - 127.5) / 127.5


def save_grid(rows: Sequence[Tensor], path: Path, *, labels: Sequence[str] = ()) -> Path:
    """One row per tensor [V, 3, H, W] in [-1, 1], views left to right, optional row labels; PNG."""
    tiles = [quantize_like_png(r).permute(0, 2, 3, 1).cpu().numpy() for r in rows]   # [V, H, W, 3]
    h, w = tiles[0].shape[1:3]
    label_w = 110 if labels else 0
    canvas = Image.new("RGB", (label_w + w * max(len(t) for t in tiles), h * len(tiles)), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(tiles):
        for v, tile in enumerate(row):
            canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (label_w + v * w, r * h))
        if labels:
            draw.text((4, r * h + h // 2 - 6), labels[r], fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def save_curve(values: Sequence[float], path: Path, *, title: str, size: tuple[int, int] = (480, 240)) -> Path:
    """A minimal line plot (PNG) of `values` against the step, with min/max annotated."""
    width, height = size
    pad = 30
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    points = [(pad + i * (width - 2 * pad) / n, height - pad - (v - lo) * (height - 2 * pad) / span)
              for i, v in enumerate(values)]
    draw.rectangle([pad, pad, width - pad, height - pad], outline="grey")
    if len(points) > 1:
        draw.line(points, fill="navy", width=2)
    draw.text((pad, 6), f"{title}   max {hi:.4g}   min {lo:.4g}   steps {len(values)}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path
