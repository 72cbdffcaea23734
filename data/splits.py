"""A split of the config as a listing, in any ``data.format``; and the checked lists that say
which of its files are usable (``data.on_bad_file: skip``).

A checked list is what ``dalinorm check-data --write-list`` writes: a header line, then the
good files relative to data.root, with the bad ones as comments. Without
``data.checked_list`` the loader writes one itself, cached where :func:`checked_list_cache`
says, and reuses it while its key line (the split's fingerprint and the settings that decide
what is bad) still matches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dalinorm.config import Config
from dalinorm.data.file_list import list_file_list
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.data.arrays import extensions_of
from dalinorm.data.listing import SplitListing
from dalinorm.data.packs import read_pack
from dalinorm.errors import DatasetError

__all__ = [
    "CACHE_DIR_NAME",
    "CHECKED_LIST_HEADER",
    "checked_list_cache",
    "list_split",
    "listed_as_good",
    "read_checked_list",
]

CHECKED_LIST_HEADER = "# dalinorm check-data"
CACHE_DIR_NAME = ".dalinorm-cache"


def list_split(cfg: Config, split: str) -> SplitListing:
    """The files of ``split`` in the configured ``data.format``."""
    key = cfg.split_key(split)
    if cfg.data.format == "file_list":
        return list_file_list(cfg.split_dir(split), cfg.data.root, key=key)
    if cfg.data.format == "webdataset":
        return read_pack(cfg.split_dir(split), key=key)
    if cfg.data.reads_arrays:
        return list_image_folder(cfg.split_dir(split), key=key,
                                 extensions=extensions_of(cfg.data.format))
    return list_image_folder(cfg.split_dir(split), key=key)


def read_checked_list(path: Path) -> set[str]:
    """The good files of a list written by ``dalinorm check-data --write-list`` (paths relative
    to data.root, one per line; lines starting with '#' are comments)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise DatasetError(f"data.checked_list: cannot read {path}: {err.strerror or err}") from None
    if not text.startswith(CHECKED_LIST_HEADER):
        raise DatasetError(f"data.checked_list: {path} is not a list written by `dalinorm check-data`"
                           f" (expected it to start with '{CHECKED_LIST_HEADER}')")
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def listed_as_good(listing: SplitListing, good: set[str], base: Path) -> list[int]:
    """Indices of the images of ``listing`` that a checked list (paths relative to ``base``,
    data.root) names as good."""
    return [i for i, f in enumerate(listing.files) if Path(f).relative_to(base).as_posix() in good]


def checked_list_cache(cfg: Config, split: str, listing: SplitListing) -> tuple[Path, str]:
    """(where the automatic checked list of ``split`` lives, the key line it must hold).

    The key line names the split, its fingerprint and the settings that decide what is bad
    (``data.max_pixels``, ``data.exif``); a list whose key line differs is stale. The folder
    is ``data.root/.dalinorm-cache`` when data.root is writable (and is not itself a split
    folder, where a new subfolder would be a class), else ``$XDG_CACHE_HOME/dalinorm`` or
    ``~/.cache/dalinorm``; the file name also hashes the split's absolute folder, so datasets
    sharing a user cache do not collide.
    """
    split_dir = cfg.split_dir(split).resolve()
    root = cfg.data.root.resolve()
    key = (f"# key: split {split_dir.name} fingerprint {listing.fingerprint()} "
           f"max_pixels {cfg.data.max_pixels} exif {cfg.data.exif}")
    if cfg.data.reads_arrays:  # what makes an array bad: its declared kind
        key += f" arrays {cfg.data.dtype} {cfg.data.channels} {cfg.data.layout}"
    elif cfg.data.dtype != "uint8":  # images: the declared bit depth decides (8-bit keys unchanged)
        key += f" dtype {cfg.data.dtype}"
    name = f"checked-{split_dir.name}-{hashlib.sha256(str(split_dir).encode('utf-8', 'surrogateescape')).hexdigest()[:12]}.txt"
    split_dirs = {cfg.split_dir(s).resolve() for s in ("train", "val")}
    if root not in split_dirs and _writable(root / CACHE_DIR_NAME):
        return root / CACHE_DIR_NAME / name, key
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "dalinorm" / name, key


def _writable(folder: Path) -> bool:
    if folder.is_dir():
        return os.access(folder, os.W_OK | os.X_OK)
    return folder.parent.is_dir() and os.access(folder.parent, os.W_OK | os.X_OK)
