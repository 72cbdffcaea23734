"""A split given as DALI's file list: ``relative/path label`` lines."""

from __future__ import annotations

from pathlib import Path

from dalinorm.data.listing import SplitListing, file_size
from dalinorm.errors import DatasetError

__all__ = ["list_file_list"]


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
                        sizes=tuple(file_size(f) for f in files))
