"""Listing an ImageFolder split exactly as torchvision's ``ImageFolder`` does.

Labels are the index of the class folder in sorted order, files are walked class by class,
folders and file names sorted, and only torchvision's image extensions count. The same
listing feeds the DALI reader, the stats pass and its fingerprint, so the three always agree.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dalinorm.config import DalinormError

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "SplitListing",
    "fingerprint_of",
    "list_image_folder",
    "shard_bounds",
]

# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively as torchvision does.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
)


class DatasetError(DalinormError, ValueError):
    """The data on disk is not what the config says it is (missing split, no classes, ...)."""


@dataclass(frozen=True)
class SplitListing:
    """The files of one split, in torchvision's order, with their labels."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)

    def relative_paths(self) -> list[str]:
        """Paths relative to the split folder, with '/' separators (stable across machines)."""
        return [f.relative_to(self.root).as_posix() for f in self.files]

    def file_list(self) -> str:
        """``size<TAB>relative/path`` lines, sorted by path: what the fingerprint covers."""
        sizes = [p.stat().st_size for p in self.files]
        return "".join(f"{size}\t{rel}\n" for rel, size in sorted(zip(self.relative_paths(), sizes)))

    def fingerprint(self) -> str:
        """sha256 over the sorted relative paths and sizes: changes when a file is added,
        removed, renamed or rewritten with another size."""
        return fingerprint_of(self.file_list())


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
    empty: list[str] = []
    for label, name in enumerate(classes):
        count = 0
        for folder, _, names in sorted(os.walk(split_dir / name, followlinks=True)):
            for fname in sorted(names):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(Path(folder) / fname)
                    labels.append(label)
                    count += 1
        if count == 0:
            empty.append(name)
    if empty:
        raise DatasetError(
            f"{key}: class folder(s) {', '.join(empty)} in {split_dir} hold no image "
            f"(expected files ending in {', '.join(IMAGE_EXTENSIONS)})"
        )
    return SplitListing(root=split_dir, classes=tuple(classes), files=tuple(files), labels=tuple(labels))


def shard_bounds(num_samples: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, end) of ``rank``'s contiguous block, the way DALI's readers split a dataset:
    block sizes differ by at most one."""
    return (rank * num_samples) // world_size, ((rank + 1) * num_samples) // world_size
