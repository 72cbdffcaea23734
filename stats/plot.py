"""Per-channel histograms of a stats pass, with mean ± std marked (matplotlib, optional)."""

from __future__ import annotations

import io
from pathlib import Path

from dalinorm.atomic import write_atomically
from dalinorm.errors import MissingDependencyError, UsageError
from dalinorm.stats.file import DatasetStats

__all__ = ["plot_histograms", "require_matplotlib"]


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError("matplotlib", "--plot (histograms)") from None


def plot_histograms(stats: DatasetStats, path: Path) -> None:
    """Write a PNG with one histogram per channel (pixel counts over the levels: 0–255, or
    0–65535 drawn in 1,024 bars of 64 levels each), with mean ± std, written atomically."""
    require_matplotlib()
    if stats.histogram is None:
        raise UsageError("stats", "carry no histogram; compute them with compute_stats(..., histogram=True)")
    import matplotlib
    import numpy as np

    from dalinorm.pipelines.kinds import full_scale_of
    from dalinorm.stats.file import channel_names

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray(stats.histogram, dtype=np.int64)
    levels = rows.shape[1]
    group = max(1, levels // 1024)  # 65,536 bins: 1,024 bars of 64 levels
    bars = rows.reshape(rows.shape[0], -1, group).sum(axis=2)
    top = full_scale_of(stats.dtype)
    names = channel_names(len(rows))
    colours = ("tab:red", "tab:green", "tab:blue") if len(rows) == 3 else ("tab:gray",) * len(rows)
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 2.2 * len(rows) + 0.5), sharex=True,
                             squeeze=False)
    for ax, name, colour, counts, mean, std in zip(
        axes[:, 0], names, colours, bars, stats.mean, stats.std
    ):
        ax.bar(np.arange(len(counts)) * group, counts, width=group, color=colour, alpha=0.6,
               align="edge")
        m, s = mean * top, std * top
        ax.axvline(m, color="black", lw=1.2, label=f"mean {m:.1f}")
        ax.axvspan(m - s, m + s, color="grey", alpha=0.15, label=f"± std {s:.1f}")
        ax.set_ylabel(f"{name} pixels")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel(f"pixel value (0–{levels - 1}" + (f", bars of {group} levels)" if group > 1 else ")"))
    axes[0, 0].set_title(f"{stats.split}: {stats.num_images} images, {stats.resolution} resolution, "
                         f"{stats.weighting} weighting")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(Path(path), buffer.getvalue())
