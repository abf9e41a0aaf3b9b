"""The collateral plot: probe identities' ID drift against their distance from the forgotten one."""

from __future__ import annotations

from pathlib import Path

from guide_ray.utils.files import atomic_file
from guide_ray.verify.collateral import Collateral


def save_collateral_plot(damage: Collateral, path: Path, title: str) -> Path:
    """Two scatter panels (embedding distance, W distance) with their fitted lines; PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    drift = damage.probe_drift.cpu().numpy()
    panels = ((axes[0], damage.probe_dist_emb, damage.slope_emb, "1 - cos to the forgotten identity"),
              (axes[1], damage.probe_dist_w, damage.slope_w, "W+ distance to w_u (per row)"))
    for ax, dist, slope, label in panels:
        x = dist.cpu().numpy()
        ax.scatter(x, drift, s=12)
        mid_x, mid_y = x.mean(), drift.mean()
        ax.plot([x.min(), x.max()], [mid_y + slope * (x.min() - mid_x), mid_y + slope * (x.max() - mid_x)],
                color="crimson", label=f"slope {slope:.3g}")
        ax.set_xlabel(label)
        ax.legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel("ID drift (1 - cos before/after)")
    fig.suptitle(f"collateral of {title}: mean drift {damage.drift_mean:.4f}, diversity ratio "
                 f"{damage.diversity_ratio:.3f}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path
