"""Listing an ImageFolder split exactly as torchvision's ``ImageFolder`` does.

Labels are the index of the class folder in sorted order, files are walked class by class,
folders and file names sorted, and only torchvision's image extensions count. The same
listing feeds the DALI reader, the stats pass and its fingerprint, so the three always agree.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dalinorm.config import Config, DalinormError

log = logging.getLogger(__name__)

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "SplitListing",
    "TarShard",
    "checked_list_cache",
    "fingerprint_of",
    "list_file_list",
    "list_image_folder",
    "list_split",
    "read_checked_list",
    "register_split_checker",
    "shard_bounds",
    "usable_listing",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively as torchvision does.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
)


class DatasetError(DalinormError, ValueError):
    """The data on disk is not what the config says it is (missing split, no classes, ...)."""


@dataclass(frozen=True)
class TarShard:
    """One webdataset tar shard of a packed split: samples ``start`` to ``start + count`` of
    the listing, in tar order."""

    path: Path
    index: Path  # DALI's index file (format v1.2)
    start: int
    count: int


@dataclass(frozen=True)
class SplitListing:
    """The images of one split, in the order the split defines (torchvision's for an
    ImageFolder, the list's for a file list, the tars' for a webdataset pack), with labels.

    For a webdataset pack, ``files`` are the images' original paths (``root / relative
    path``, for messages and the fingerprint; they need not exist), ``shards`` the tars and
    ``offsets`` where each image's bytes start in its tar.
    """

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    sizes: tuple[int, ...]  # bytes; -1 where the file cannot be stat()ed (a broken link)
    shards: tuple[TarShard, ...] = ()
    offsets: tuple[int, ...] = ()
    pack_id: str = ""  # a pack's samples.tsv sha256: which layout of the images this is

    def __len__(self) -> int:
        return len(self.files)

    @property
    def packed(self) -> bool:
        """True for a webdataset pack (images inside tar shards)."""
        return bool(self.shards)

    @functools.cached_property
    def _shard_starts(self) -> list[int]:
        return [s.start for s in self.shards]

    def _shard_of(self, i: int) -> TarShard:
        return self.shards[bisect.bisect_right(self._shard_starts, i) - 1]

    def source(self, i: int) -> str | tuple[str, int, int]:
        """Where image ``i``'s bytes are: a path, or (tar path, offset, size) in a pack."""
        if not self.packed:
            return str(self.files[i])
        return str(self._shard_of(i).path), self.offsets[i], self.sizes[i]

    def read_bytes(self, i: int) -> bytes:
        """The encoded bytes of image ``i`` (from its file, or from its tar shard)."""
        return read_source(self.source(i))

    def describe(self, i: int) -> str:
        """Image ``i`` for a message: its path, and in a pack also its tar."""
        if not self.packed:
            return str(self.files[i])
        shard = self._shard_of(i)
        return f"{shard.path}[{i - shard.start}] ({self.files[i].relative_to(self.root).as_posix()})"

    def rank_block(self, rank: int, world_size: int) -> tuple[int, int]:
        """[start, end) of the images ``rank`` reads in order (eval, stats): blocks of sizes
        differing by at most one, as DALI's readers split a dataset (also in a pack)."""
        return shard_bounds(len(self), rank, world_size)

    def tar_block(self, rank: int, world_size: int) -> tuple[int, int]:
        """[start, end) of the images ``rank`` trains on in a pack: whole, consecutive tars,
        the boundaries at the tar edges nearest an equal split (every rank one tar at least)."""
        return _tar_bounds([s.count for s in self.shards], rank, world_size)

    def shards_in(self, start: int, end: int) -> tuple[TarShard, ...]:
        """The tars that hold exactly images [start, end) (a block from :meth:`rank_block`)."""
        inside = tuple(s for s in self.shards if start <= s.start and s.start + s.count <= end)
        if sum(s.count for s in inside) != end - start:
            raise ValueError(f"images [{start}, {end}) do not fall on tar shard boundaries")
        return inside

    def relative_paths(self) -> list[str]:
        """Paths relative to the split folder, with '/' separators (stable across machines)."""
        return [f.relative_to(self.root).as_posix() for f in self.files]

    def file_list(self) -> str:
        """``size<TAB>relative/path`` lines, sorted by path: what the fingerprint covers."""
        return "".join(f"{size}\t{rel}\n" for rel, size in sorted(zip(self.relative_paths(), self.sizes)))

    def subset(self, keep: list[int]) -> "SplitListing":
        """The listing restricted to the indices ``keep`` (labels and classes unchanged)."""
        if self.packed:
            raise ValueError("a webdataset pack cannot drop images inside its tar shards")
        return SplitListing(self.root, self.classes, tuple(self.files[i] for i in keep),
                            tuple(self.labels[i] for i in keep), tuple(self.sizes[i] for i in keep))

    def fingerprint(self) -> str:
        """sha256 over the sorted relative paths and sizes: changes when a file is added,
        removed, renamed or rewritten with another size. Computed once per listing."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            cached = fingerprint_of(self.file_list())
            object.__setattr__(self, "_fingerprint", cached)  # a cache, not state: frozen is fine
        return cached


def fingerprint_of(file_list: str) -> str:
    """The fingerprint of a :meth:`SplitListing.file_list` text."""
    return "sha256:" + hashlib.sha256(file_list.encode("utf-8", "surrogateescape")).hexdigest()


def list_image_folder(split_dir: Path, *, key: str = "data.root") -> SplitListing:
    """List ``split_dir`` as ``torchvision.datasets.ImageFolder(split_dir)`` would.

    Raises :class:`DatasetError` naming the folder when it is missing, holds no class folders,
    or a class folder holds no image.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        what = "is not a folder" if split_dir.exists() else "does not exist"
        raise DatasetError(f"{key}: split folder {split_dir} {what}; expected an ImageFolder split "
                           "(one subfolder per class)")
    classes = sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir())
    if not classes:
        raise DatasetError(f"{key}: split folder {split_dir} has no class subfolders; expected "
                           "<split>/<class>/<image>")
    files: list[Path] = []
    labels: list[int] = []
    sizes: list[int] = []
    empty: list[str] = []
    for label, name in enumerate(classes):
        count = 0
        for folder, _, names in sorted(os.walk(split_dir / name, followlinks=True)):
            for fname in sorted(names):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    path = Path(folder) / fname
                    files.append(path)
                    labels.append(label)
                    sizes.append(_size(path))
                    count += 1
        if count == 0:
            empty.append(name)
    if empty:
        raise DatasetError(
            f"{key}: class folder(s) {', '.join(empty)} in {split_dir} hold no image "
            f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})"
        )
    return SplitListing(root=split_dir, classes=tuple(classes), files=tuple(files),
                        labels=tuple(labels), sizes=tuple(sizes))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def usable_listing(cfg: Config, split: str) -> tuple[SplitListing, int]:
    """The files of ``split`` that the loader and the stats pass read, and how many were skipped.

    With ``data.on_bad_file: error`` that is every file, after a cheap check that none is
    empty or unreadable (the error names them before any epoch starts); with ``skip``, only
    the files that ``data.checked_list`` lists as good, or, without one, that check-data's
    checks found good: run once per split and cached by its fingerprint
    (:func:`checked_list_cache`). How many were skipped, and where the list is, is logged.
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
        return listing, 0
    list_path = cfg.data.checked_list
    if list_path is None:
        list_path = _automatic_checked_list(cfg, split, listing)
    good = read_checked_list(list_path)
    base = cfg.data.root
    keep = [i for i, f in enumerate(listing.files) if _relative_key(f, base) in good]
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


# ------------------------------------------------------------------ automatic checked lists
# ``data.on_bad_file: skip`` without ``data.checked_list`` runs check-data's checks itself.
# They decode with DALI (pipelines/checks.py, a room above this one), which registers its
# entry point here when the ``dalinorm.pipelines`` package is imported; this room only knows
# where the cached list lives and whether it is still valid.
SplitChecker = Callable[[Config, str, SplitListing, Path, str], None]
_split_checker: SplitChecker | None = None
CACHE_DIR_NAME = ".dalinorm-cache"


def register_split_checker(checker: SplitChecker) -> None:
    """Set what writes a checked list for ``(cfg, split, listing, path, key_line)``."""
    global _split_checker
    _split_checker = checker


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
    if _split_checker is None:  # pragma: no cover - dalinorm.pipelines registers it on import
        raise RuntimeError("no split checker registered (import dalinorm.pipelines.checks)")
    log.info("data.on_bad_file: skip without data.checked_list: checking the %d files of %s once "
             "(check-data's checks; the list is cached in %s)", len(listing), listing.root, path)
    _split_checker(cfg, split, listing, path, key)
    return path


def _relative_key(path: Path, base: Path) -> str:
    return Path(path).relative_to(base).as_posix()


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


CHECKED_LIST_HEADER = "# dalinorm check-data"


def list_file_list(list_path: Path, root: Path, *, key: str) -> SplitListing:
    """A split given as DALI's file list: ``relative/path label`` per line, relative to ``root``.

    Errors name the list file and line. Classes are the labels 0..max as strings.
    """
    try:
        text = Path(list_path).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise DatasetError(f"{key}: file list {list_path} does not exist") from None
    except OSError as err:
        raise DatasetError(f"{key}: cannot read file list {list_path}: {err.strerror or err}") from None
    files: list[Path] = []
    labels: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)  # the path may contain spaces; the label cannot
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{list_path}:{number}: expected 'relative/path label' with an "
                               f"integer label >= 0, got {line.strip()!r}")
        path = Path(parts[0])
        if path.is_absolute() or ".." in path.parts:
            raise DatasetError(f"{list_path}:{number}: path must be relative to data.root "
                               f"({root}), got {parts[0]!r}")
        files.append(root / path)
        labels.append(int(parts[1]))
    if not files:
        raise DatasetError(f"{key}: file list {list_path} lists no files")
    classes = tuple(str(i) for i in range(max(labels) + 1))
    return SplitListing(root=root, classes=classes, files=tuple(files), labels=tuple(labels),
                        sizes=tuple(_size(f) for f in files))


def list_split(cfg: Config, split: str) -> SplitListing:
    """The files of ``split`` in the configured ``data.format``."""
    key = f"data.{split}" if split in ("train", "val") else "data.root"
    if cfg.data.format == "file_list":
        return list_file_list(cfg.split_dir(split), cfg.data.root, key=key)
    if cfg.data.format == "webdataset":
        from dalinorm.pipelines.webdataset import read_pack

        return read_pack(cfg.split_dir(split), key=key)
    return list_image_folder(cfg.split_dir(split), key=key)


def read_source(source: str | tuple[str, int, int]) -> bytes:
    """The bytes at a :meth:`SplitListing.source`: a whole file, or a member of a tar."""
    if isinstance(source, str):
        with open(source, "rb") as handle:
            return handle.read()
    path, offset, size = source
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise OSError(f"{path}: ends before the {size} bytes at offset {offset} (a truncated shard?)")
    return data


def _tar_bounds(counts: list[int], rank: int, world_size: int) -> tuple[int, int]:
    """Image range of ``rank`` when consecutive tars (``counts`` images each) are dealt out in
    ``world_size`` blocks of whole tars, each boundary at the tar edge nearest to an equal split
    (every rank at least one tar)."""
    if world_size > len(counts):
        raise DatasetError(f"a pack of {len(counts)} tar shards cannot be split across {world_size} "
                           "ranks at shard granularity; re-pack with more shards (--num-shards, "
                           "or a smaller --shard-size)")
    starts, cuts = _tar_cuts(tuple(counts), world_size)
    return starts[cuts[rank]], starts[cuts[rank + 1]]


@functools.lru_cache(maxsize=8)
def _tar_cuts(counts: tuple[int, ...], world_size: int) -> tuple[list[int], list[int]]:
    """(first image of each tar + the total, first tar of each rank + the tar count)."""
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + count)
    cuts = [0]
    for r in range(1, world_size):
        target = r * starts[-1] / world_size
        k = bisect.bisect_left(starts, target)
        nearest = min((k - 1, k), key=lambda i: (abs(starts[i] - target), i)) if k > 0 else k
        # after the previous boundary, and leaving a tar for every later rank
        cuts.append(min(max(nearest, cuts[-1] + 1), len(counts) - (world_size - r)))
    cuts.append(len(counts))
    return starts, cuts


def shard_bounds(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of ``rank``'s contiguous block, the way DALI's readers split a dataset:
    block sizes differ by at most one."""
    return (rank * num_samples) // world_size, ((rank + 1) * num_samples) // world_size
