"""Listing an ImageFolder split exactly as torchvision's ``ImageFolder`` does.

Labels are the index of the class folder in sorted order, files are walked class by class,
folders and file names sorted, and only torchvision's image extensions count.
"""

from __future__ import annotations

import os
from pathlib import Path

from dalinorm.data.listing import IMAGE_EXTENSIONS, SplitListing, file_size
from dalinorm.errors import DatasetError

__all__ = ["list_image_folder"]


def list_image_folder(split_dir: Path, *, key: str = "data.root",
                      extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> SplitListing:
    """List ``split_dir`` as ``torchvision.datasets.ImageFolder(split_dir)`` would.

    ``extensions``: the file endings that count (torchvision's image extensions; ``.npy``
    for ``data.format: numpy``, the same tree of class folders holding arrays).

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
                if fname.lower().endswith(extensions):
                    path = Path(folder) / fname
                    files.append(path)
                    labels.append(label)
                    sizes.append(file_size(path))
                    count += 1
        if count == 0:
            empty.append(name)
    if empty:
        raise DatasetError(
            f"{key}: class folder(s) {', '.join(empty)} in {split_dir} hold no "
            f"{'image' if extensions == IMAGE_EXTENSIONS else 'array'} "
            f"(expected files ending in {', '.join(extensions)})"
        )
    return SplitListing(root=split_dir, classes=tuple(classes), files=tuple(files),
                        labels=tuple(labels), sizes=tuple(sizes))
