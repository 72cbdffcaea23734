"""What a split holds: its images in order, their labels, sizes and where their bytes are.

:class:`SplitListing` is what every format (ImageFolder, file list, webdataset pack) turns a
split into, and what the DALI graphs, the stats pass, the reference path and the fingerprint
all read, so they always agree on which images a split has.

Words: a *shard* is one tar file of a webdataset pack (``shard-000004.tar``); a *rank block*
is the contiguous range of images one rank reads (:func:`rank_block_bounds`), or, when a rank
trains on a pack, the run of whole shards it reads (:meth:`SplitListing.tar_block`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dalinorm.errors import DatasetError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageSource",
    "SplitListing",
    "TarShard",
    "file_size",
    "fingerprint_of",
    "rank_block_bounds",
    "tar_block_bounds",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively as torchvision does.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
)


@dataclass(frozen=True)
class TarShard:
    """One webdataset tar shard of a packed split: samples ``start`` to ``start + count`` of
    the listing, in tar order."""

    path: Path
    index: Path  # DALI's index file (format v1.2)
    start: int
    count: int



@dataclass(frozen=True)
class ImageSource:
    """Where one image's encoded bytes are: a whole file, or ``size`` bytes at ``offset`` of
    a tar shard (``offset`` is None for a file)."""

    path: str
    offset: int | None = None
    size: int | None = None

    @property
    def in_tar(self) -> bool:
        return self.offset is not None

    def read(self) -> bytes:
        """The encoded bytes: the whole file, or the member's bytes in its tar."""
        with open(self.path, "rb") as handle:
            if self.offset is None:
                return handle.read()
            handle.seek(self.offset)
            data = handle.read(self.size)
        if len(data) != self.size:
            raise DatasetError(f"{self.path}: ends before the {self.size} bytes at offset "
                               f"{self.offset} (a truncated shard?); re-pack the split")
        return data


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
    recorded_fingerprint: str = ""  # a pack's manifest records its split's fingerprint

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

    def source(self, i: int) -> ImageSource:
        """Where image ``i``'s bytes are: its file, or its member of a tar shard."""
        if not self.packed:
            return ImageSource(str(self.files[i]))
        return ImageSource(str(self._shard_of(i).path), self.offsets[i], self.sizes[i])

    def sources(self) -> list[ImageSource]:
        """:meth:`source` of every image, in order."""
        return [self.source(i) for i in range(len(self))]

    def read_bytes(self, i: int) -> bytes:
        """The encoded bytes of image ``i`` (from its file, or from its tar shard)."""
        return self.source(i).read()

    def describe(self, i: int) -> str:
        """Image ``i`` for a message: its path, and in a pack also its tar."""
        if not self.packed:
            return str(self.files[i])
        shard = self._shard_of(i)
        return f"{shard.path}[{i - shard.start}] ({self.files[i].relative_to(self.root).as_posix()})"

    def rank_block(self, rank: int, world_size: int) -> tuple[int, int]:
        """[start, end) of the images ``rank`` reads in order (eval, stats): blocks of sizes
        differing by at most one, as DALI's readers split a dataset (also in a pack)."""
        return rank_block_bounds(len(self), rank, world_size)

    def tar_block(self, rank: int, world_size: int) -> tuple[int, int]:
        """[start, end) of the images ``rank`` trains on in a pack: whole, consecutive tars,
        the boundaries at the tar edges nearest an equal split (every rank one tar at least)."""
        return tar_block_bounds([s.count for s in self.shards], rank, world_size)

    def shards_in(self, start: int, end: int) -> tuple[TarShard, ...]:
        """The tars that hold exactly images [start, end) (a block from :meth:`rank_block`)."""
        inside = tuple(s for s in self.shards if start <= s.start and s.start + s.count <= end)
        if sum(s.count for s in inside) != end - start:
            raise DatasetError(f"images [{start}, {end}) do not fall on tar shard boundaries")
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
            raise DatasetError("a webdataset pack cannot drop images inside its tar shards")
        return SplitListing(self.root, self.classes, tuple(self.files[i] for i in keep),
                            tuple(self.labels[i] for i in keep), tuple(self.sizes[i] for i in keep))

    def fingerprint(self) -> str:
        """sha256 over the sorted relative paths and sizes: changes when a file is added,
        removed, renamed or rewritten with another size. A pack's is the one its manifest
        recorded (recomputing it costs seconds at a million images)."""
        return self.recorded_fingerprint or self._computed_fingerprint

    @functools.cached_property
    def _computed_fingerprint(self) -> str:
        return fingerprint_of(self.file_list())


def fingerprint_of(file_list: str) -> str:
    """The fingerprint of a :meth:`SplitListing.file_list` text."""
    return "sha256:" + hashlib.sha256(file_list.encode("utf-8", "surrogateescape")).hexdigest()


def file_size(path: Path) -> int:
    """Bytes of ``path``; -1 where it cannot be stat()ed (a broken link)."""
    try:
        return path.stat().st_size
    except OSError:
        return -1


def rank_block_bounds(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of ``rank``'s contiguous block, the way DALI's readers split a dataset:
    block sizes differ by at most one."""
    return (rank * num_samples) // world_size, ((rank + 1) * num_samples) // world_size


def tar_block_bounds(counts: list[int], rank: int, world_size: int) -> tuple[int, int]:
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
