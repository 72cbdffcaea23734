"""``dalinorm pack`` and ``dalinorm index``: a split's usable images as webdataset tar shards,
and foreign tars made readable in place (the format: :mod:`dalinorm.data.packs`)."""

from __future__ import annotations

import re
from pathlib import Path

from dalinorm.config import Config
from dalinorm.data.pack_writer import PackResult, index_tars, write_pack
from dalinorm.errors import DatasetError, UsageError
from dalinorm.pipelines.usable import usable_listing

__all__ = ["index_tars", "pack_split", "pack_summary", "parse_size"]


def parse_size(text: str) -> int:
    """``"1GB"``, ``"500MB"``, ``"64MiB"``, ``"1e9"`` or a byte count → bytes (kB = 1000,
    KiB = 1024)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([kKMGT]i?)?[bB]?\s*", text)
    if not match:
        raise UsageError("--shard-size", f"expected a size like 1GB, 500MB or 64MiB, got {text!r}")
    number, unit = float(match.group(1)), match.group(2) or ""
    powers = {"": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4}
    base = 1024 if unit.endswith("i") else 1000
    size = int(number * base ** powers[unit.rstrip("i")])
    if size < 1:
        raise UsageError("--shard-size", f"must be at least 1 byte, got {text!r}")
    return size


def pack_split(
    cfg: Config,
    *,
    split: str,
    out: Path,
    shard_size: int = 1_000_000_000,
    num_shards: int | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> PackResult:
    """Write the usable images of ``split`` as webdataset shards in ``out``.

    ``shuffle`` (default: for the training split) writes the images in a random order drawn
    from ``seed`` (default ``loader.seed``); otherwise the split's own order is kept (eval
    through the pack then yields the same tensors in the same order as the folder).
    ``num_shards`` replaces the byte limit with that many tars of equal image counts (±1).
    Running the same command again after an interruption finishes the pack.
    """
    if cfg.data.format == "webdataset":
        raise DatasetError("data.format: the source of `dalinorm pack` is an imagefolder or "
                           "file_list split; this config already reads a webdataset pack")
    listing, skipped = usable_listing(cfg, split)
    return write_pack(
        listing, split=split, out=out, source_format=cfg.data.format,
        shuffle=cfg.is_training_split(split) if shuffle is None else shuffle,
        seed=cfg.loader.seed if seed is None else seed, skipped=skipped,
        shard_size=shard_size, num_shards=num_shards, progress=progress,
    )


def pack_summary(result: PackResult, cfg: Config, split: str) -> list[str]:
    """What ``dalinorm pack`` prints: the pack, and the settings that read it."""
    kept = f" ({result.resumed_shards} kept from the interrupted run)" if result.resumed_shards else ""
    key = "val" if split in ("val", cfg.data.val) else "train"
    return [f"{result.out}: {result.num_samples} images in {result.num_shards} shards, "
            f"{result.bytes / 1e6:,.1f} MB{kept}",
            f"read it with: --set data.format=webdataset --set data.root={result.out.parent.resolve()} "
            f"--set data.{key}={result.out.name}"]
