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
    """Write a PNG with one histogram per channel (pixel counts over 0–255), written atomically."""
    require_matplotlib()
    if stats.histogram is None:
        raise UsageError("stats", "carry no histogram; compute them with compute_stats(..., histogram=True)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(7, 6.5), sharex=True)
    for ax, name, colour, counts, mean, std in zip(
        axes, "RGB", ("tab:red", "tab:green", "tab:blue"), stats.histogram, stats.mean, stats.std
    ):
        ax.bar(range(256), counts, width=1.0, color=colour, alpha=0.6)
        m, s = mean * 255, std * 255
        ax.axvline(m, color="black", lw=1.2, label=f"mean {m:.1f}")
        ax.axvspan(m - s, m + s, color="grey", alpha=0.15, label=f"± std {s:.1f}")
        ax.set_ylabel(f"{name} pixels")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("pixel value (0–255)")
    axes[0].set_title(f"{stats.split}: {stats.num_images} images, {stats.resolution} resolution, "
                      f"{stats.weighting} weighting")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(Path(path), buffer.getvalue())
