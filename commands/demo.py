"""``dalinorm demo``: the exact statistics of the sample training split, then one train and
one eval epoch normalized with them, with what a user wants to see of each."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Iterator

from dalinorm.commands.stats import format_stats_table
from dalinorm.config import Config
from dalinorm.integration.loader import DaliLoader
from dalinorm.stats import compute_stats, write_stats_file

__all__ = ["demo_lines", "stream_epoch"]


# ---------------------------------------------------------------------- demo
def stream_epoch(loader) -> dict:
    """One epoch through ``loader``: counts, shapes, speed and per-channel output moments."""
    import torch

    reduce_dims = [0, 2, 3]  # images are [N, C, H, W] in either memory format
    total = total_sq = None  # per channel: 1 (grayscale), 3 (RGB) or C
    values = 0
    images_seen = 0
    shape = dtype = device = None
    start = time.perf_counter()
    for batches, (images, labels) in enumerate(loader, start=1):
        x = images.to(torch.float64)
        if total is None:
            total = torch.zeros(x.shape[1], dtype=torch.float64)
            total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
        total += x.sum(dim=reduce_dims).cpu()
        total_sq += (x * x).sum(dim=reduce_dims).cpu()
        values += x.numel() // x.shape[1]
        images_seen += labels.shape[0]
        shape, dtype, device = tuple(images.shape), images.dtype, images.device
    seconds = time.perf_counter() - start
    if total is None:
        total = total_sq = torch.zeros(1, dtype=torch.float64)
    mean = total / max(values, 1)
    std = (total_sq / max(values, 1) - mean * mean).clamp_min(0).sqrt()
    return {
        "batches": batches if images_seen else 0,
        "images": images_seen,
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device),
        "images_per_s": images_seen / seconds if seconds > 0 else float("nan"),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }


def demo_lines(cfg: Config, config_path: str) -> Iterator[str]:
    """The demo's report, line by line, as each step finishes."""
    yield f"config: {config_path} (valid)"
    # percentile clipping needs the histogram (the GPU's sums reducer counts it on the host)
    stats = compute_stats(cfg, split="train", histogram=cfg.normalize.mode == "percentile")
    yield format_stats_table(stats)
    with tempfile.TemporaryDirectory(prefix="dalinorm-demo-") as tmp:
        stats_file = Path(tmp) / "train_stats.yaml"
        write_stats_file(stats_file, stats)
        if cfg.normalize.mode != "per_image":  # per_image needs no dataset statistics
            cfg = dataclasses.replace(cfg, normalize=dataclasses.replace(
                cfg.normalize, source="stats", stats_file=stats_file, mean=None, std=None))
        for split in ("train", "val"):
            loader = DaliLoader(cfg, split)
            result = stream_epoch(loader)
            yield (f"{split:>5}: device {result['device']}, {result['batches']} batches, "
                   f"{result['images']} images, batch shape {list(result['shape'])} {result['dtype']}, "
                   f"{result['images_per_s']:.0f} images/s")
            yield ("       normalized output per channel: mean "
                   + ", ".join(f"{v:+.3f}" for v in result["mean"])
                   + "; std " + ", ".join(f"{v:.3f}" for v in result["std"])
                   + f"  (normalization: {loader.normalization.origin})")
            loader.close()
