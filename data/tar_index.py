"""DALI's webdataset index files (format v1.2): written for a tar, read back for its offsets.

One line per sample (consecutive members with the same key): ``ext offset size name`` for
each component, offsets where the member's data starts, as DALI's ``wds2idx`` writes them.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from dalinorm.atomic import write_atomically
from dalinorm.data.packs import PACK_IMAGE_EXTENSIONS
from dalinorm.errors import DatasetError

__all__ = ["image_offsets", "sample_members", "split_member_name", "write_index"]


def split_member_name(name: str) -> tuple[str, str]:
    """A member name → (sample key, extension), split at the first dot of the last path
    component, as DALI's webdataset reader and its ``wds2idx`` do."""
    dot = name.find(".", name.rfind("/") + 1)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def sample_members(archive: tarfile.TarFile):
    """(member, sample key, extension) of the regular files that form samples, in tar order
    (hidden files skipped, as DALI's ``wds2idx`` skips them)."""
    for member in archive:
        if not member.isreg():
            continue
        key, ext = split_member_name(member.name)
        if key and not key.endswith("/"):
            yield member, key, ext


def write_index(tar_path: Path, index_path: Path) -> int:
    """Write DALI's index (format v1.2) of ``tar_path``; returns the number of samples.

    One line per sample (consecutive members with the same key): ``ext offset size name``
    for each component, offsets where the member's data starts.
    """
    samples: list[list[tuple[str, int, int, str]]] = []
    last = None
    with tarfile.open(tar_path) as archive:
        for member, key, ext in sample_members(archive):
            if key != last:
                samples.append([])
                last = key
            samples[-1].append((ext, member.offset_data, member.size, member.name))
    if not samples:
        raise DatasetError(f"{tar_path}: holds no sample")
    lines = [f"v1.2 {len(samples)}"]
    lines += [" ".join(f"{e} {o} {s} {n}" for e, o, s, n in sample) for sample in samples]
    write_atomically(index_path, ("\n".join(lines) + "\n").encode("utf-8"))
    return len(samples)


def image_offsets(idx: Path, expected: int) -> list[int]:
    """Image data offsets of a finished shard, from its index file."""
    lines = idx.read_text(encoding="utf-8").splitlines()[1:]
    offsets = []
    for line in lines:
        fields = line.split()
        for k in range(0, len(fields), 4):
            if fields[k] in PACK_IMAGE_EXTENSIONS:
                offsets.append(int(fields[k + 1]))
    if len(offsets) != expected:
        raise DatasetError(f"{idx}: {len(offsets)} images, expected {expected}; delete the shard "
                           "and run the pack again")
    return offsets
