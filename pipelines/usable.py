"""The files of a split that the loader and the stats pass read: all of them
(``data.on_bad_file: error``, after a cheap check that none is empty or unreadable), or only
the usable ones (``skip``), from ``data.checked_list`` or from check-data's checks run once
and cached by the split's fingerprint."""

from __future__ import annotations

import logging
from pathlib import Path

from dalinorm.config import Config
from dalinorm.data.listing import SplitListing
from dalinorm.data.splits import (
    CHECKED_LIST_HEADER,
    checked_list_cache,
    list_split,
    listed_as_good,
    read_checked_list,
)
from dalinorm.errors import DatasetError
from dalinorm.pipelines.checks import write_split_check

log = logging.getLogger(__name__)

__all__ = ["usable_listing"]


def usable_listing(cfg: Config, split: str) -> tuple[SplitListing, int]:
    """The files of ``split`` that the loader and the stats pass read, and how many were skipped.

    With ``data.on_bad_file: error`` that is every file, after a cheap check that none is
    empty or unreadable (the error names them before any epoch starts); with ``skip``, only
    the files that ``data.checked_list`` lists as good, or, without one, that check-data's
    checks found good: run once per split and cached by its fingerprint
    (:func:`dalinorm.data.splits.checked_list_cache`). How many were skipped, and where the list is, is logged.
    """
    listing = list_split(cfg, split)
    if cfg.data.on_bad_file == "error":
        broken = [(f, s) for f, s in zip(listing.files, listing.sizes) if s <= 0]
        if broken:
            path, size = broken[0]
            what = "is empty (0 bytes)" if size == 0 else "cannot be read (a broken link?)"
            more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
            raise DatasetError(
                f"{path}: {what}{more}; run `dalinorm check-data` to list every unusable file, "
                "or set data.on_bad_file: skip"
            )
        _refuse_wrong_bit_depth(cfg, listing)
        return listing, 0
    list_path = cfg.data.checked_list
    if list_path is None:
        list_path = _automatic_checked_list(cfg, split, listing)
    keep = listed_as_good(listing, read_checked_list(list_path), cfg.data.root)
    skipped = len(listing) - len(keep)
    if not keep:
        raise DatasetError(f"data.checked_list: {list_path} lists none of the "
                           f"{len(listing)} files under {listing.root}")
    if skipped:
        log.warning("%s: skipping %d of %d files not listed as good in %s (data.on_bad_file: skip)",
                    listing.root, skipped, len(listing), list_path)
    else:
        log.info("%s: all %d files are listed as good in %s (data.on_bad_file: skip)",
                 listing.root, len(listing), list_path)
    return listing.subset(keep), skipped


# files whose bit depth can differ from 8: read their headers even in an 8-bit dataset
_DEEP_EXTENSIONS = (".png", ".tif", ".tiff", ".pgm", ".ppm")


def _refuse_wrong_bit_depth(cfg: Config, listing: SplitListing) -> None:
    """A :class:`DatasetError` naming the first file whose header declares another bit depth
    than ``data.dtype`` (DALI would rescale it silently). With uint8 only PNG, TIFF and PNM
    files are read (a JPEG set costs nothing); with uint16 every file. ≈16 µs per PNG
    header, ≈0.2 ms per TIFF (PIL reads its tags), in a thread pool. In a pack the members'
    headers are read in their tars (a pack made under another data.dtype, or foreign tars)."""
    from concurrent.futures import ThreadPoolExecutor

    from dalinorm.data.sample_type import bit_depth_mismatch, read_sample_type

    if cfg.data.reads_arrays:
        _refuse_wrong_arrays(cfg, listing)
        return
    chosen = [i for i, f in enumerate(listing.files)
              if cfg.data.dtype != "uint8" or Path(f).suffix.lower() in _DEEP_EXTENSIONS]
    if not chosen:
        return

    def header(i):
        source = listing.source(i)
        if not source.in_tar:
            return read_sample_type(source.path)
        with open(source.path, "rb") as handle:  # a PNG's header is in its first 32 bytes
            handle.seek(source.offset)
            head = handle.read(min(source.size, 32))
        return read_sample_type(source.read() if head[:4] in (b"II*\x00", b"MM\x00*") else head)

    def reason(i):
        try:
            return bit_depth_mismatch(header(i), cfg.data.dtype)
        except (OSError, DatasetError):  # unreadable or truncated: the reader names it
            return None

    with ThreadPoolExecutor(max_workers=max(2, cfg.loader.num_threads)) as pool:
        for i, why in zip(chosen, pool.map(reason, chosen, chunksize=256)):
            if why:
                raise DatasetError(f"{listing.describe(i)}: {why}; run `dalinorm check-data` to "
                                   "list every such file, or set data.on_bad_file: skip")


def _refuse_wrong_arrays(cfg: Config, listing: SplitListing) -> None:
    """A :class:`DatasetError` naming the first array (``.npy`` or TIFF) whose header is not
    of the declared kind (data.dtype, data.channels, data.layout; a planar TIFF): DALI's
    decoders would refuse a mixed batch mid-epoch, or rescale or scramble it silently.
    Headers only (≈20 µs per .npy, ≈0.2 ms per TIFF, in a thread pool); check-data also
    checks float32 values for NaN and infinity."""
    from concurrent.futures import ThreadPoolExecutor

    from dalinorm.data.arrays import file_problem

    def reason(path):
        return file_problem(path, cfg.data, header_only=True)

    with ThreadPoolExecutor(max_workers=max(2, cfg.loader.num_threads)) as pool:
        for path, why in zip(listing.files, pool.map(reason, listing.files, chunksize=256)):
            if why:
                raise DatasetError(f"{path}: {why}; run `dalinorm check-data` to list every such "
                                   "file, or set data.on_bad_file: skip")


def _automatic_checked_list(cfg: Config, split: str, listing: SplitListing) -> Path:
    """The cached checked list of ``split``, written by check-data's checks when missing or
    stale (another fingerprint or setting)."""
    path, key = checked_list_cache(cfg, split, listing)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            head = [handle.readline().rstrip("\n") for _ in range(2)]
        if head[0].startswith(CHECKED_LIST_HEADER) and head[1] == key:
            log.info("data.on_bad_file: skip: reusing the checked list %s (the split's fingerprint "
                     "is unchanged)", path)
            return path
        log.info("data.on_bad_file: skip: %s is stale (the split changed); checking again", path)
    except OSError:
        pass
    log.info("data.on_bad_file: skip without data.checked_list: checking the %d files of %s once "
             "(check-data's checks; the list is cached in %s)", len(listing), listing.root, path)
    write_split_check(cfg, split, listing, path, key)
    return path
