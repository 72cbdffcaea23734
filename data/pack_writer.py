"""Writing webdataset packs: ``dalinorm pack`` (a split's images as tar shards) and
``dalinorm index`` (DALI index files and a manifest for tars written by other tools).

Each tar is written under a temporary name and renamed when complete, its index written
atomically, and ``.pack-progress`` records finished shards: an interrupted pack resumes where
it stopped, and the manifest appears last, so a half-written pack is never read as a whole one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dalinorm.atomic import write_atomically
from dalinorm.data.listing import SplitListing, fingerprint_of
from dalinorm.data.packs import (
    FORMAT,
    MANIFEST,
    MAX_LABEL_DIGITS,
    PACK_IMAGE_EXTENSIONS,
    PROGRESS,
    SAMPLES,
    VERSION,
)
from dalinorm.data.tar_index import image_offsets, sample_members, write_index
from dalinorm.errors import DatasetError
from dalinorm.progress import progress_bar

log = logging.getLogger(__name__)

__all__ = ["PackResult", "index_tars", "write_pack"]

_TAR_BLOCK = 512


def _member_bytes(size: int) -> int:
    """Bytes a member of ``size`` bytes takes in a ustar archive (header + padded data)."""
    return _TAR_BLOCK + -(-size // _TAR_BLOCK) * _TAR_BLOCK


def _label_bytes(label: int) -> bytes:
    return str(label).encode("ascii")


def _plan(listing: SplitListing, order: list[int], shard_size: int,
          num_shards: int | None = None) -> list[list[int]]:
    """Consecutive runs of ``order``: ``num_shards`` runs of equal image counts (±1), or runs
    whose tars stay within ``shard_size`` bytes (at least one image per shard)."""
    if num_shards is not None:
        if not 1 <= num_shards <= len(order):
            raise DatasetError(f"--num-shards: {num_shards} shards for {len(order)} images; expected "
                               f"1 to {len(order)}")
        return [order[k * len(order) // num_shards:(k + 1) * len(order) // num_shards]
                for k in range(num_shards)]
    shards: list[list[int]] = [[]]
    used = 0
    for i in order:
        need = _member_bytes(listing.sizes[i]) + _member_bytes(len(_label_bytes(listing.labels[i])))
        if shards[-1] and used + need > shard_size:
            shards.append([])
            used = 0
        shards[-1].append(i)
        used += need
    return shards


@dataclass(frozen=True)
class PackResult:
    out: Path
    num_samples: int
    num_shards: int
    bytes: int
    resumed_shards: int


def _image_ext(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    if ext not in PACK_IMAGE_EXTENSIONS:
        raise DatasetError(f"{path}: cannot be packed: extension {path.suffix!r} is not one of "
                           f"{', '.join(PACK_IMAGE_EXTENSIONS)}")
    return ext


def _write_tar(listing: SplitListing, members: list[int], keys: list[str], path: Path) -> list[int]:
    """Write one tar (reproducibly: fixed owner, mode and time); return each image's data offset."""
    offsets = []
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for i, key in zip(members, keys):
            data = listing.read_bytes(i)
            if len(data) != listing.sizes[i]:
                raise DatasetError(f"{listing.files[i]}: changed size while packing "
                                   f"({listing.sizes[i]} → {len(data)} bytes)")
            for ext, payload in ((_image_ext(listing.files[i]), data),
                                 ("cls", _label_bytes(listing.labels[i]))):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                if ext != "cls":
                    offsets.append(archive.offset + _TAR_BLOCK)  # ustar: one header block
                archive.addfile(info, io.BytesIO(payload))
    return offsets


def _read_progress(out: Path, plan_id: str) -> dict[str, int]:
    """Finished shards of an interrupted pack of the same plan: {tar name: bytes}."""
    path = out / PROGRESS
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != f"plan {plan_id}":
        raise DatasetError(f"{out}: holds an unfinished pack of other data or options; finish it "
                           "with its own command, or delete the folder and pack again")
    done = {}
    for line in lines[1:]:
        name, size = line.split()
        if (out / name).is_file() and (out / name).stat().st_size == int(size):
            done[name] = int(size)
    return done


def write_pack(
    listing: SplitListing,
    *,
    split: str,
    out: Path,
    source_format: str,
    shuffle: bool,
    seed: int,
    skipped: int = 0,
    shard_size: int = 1_000_000_000,
    num_shards: int | None = None,
    progress: bool = False,
) -> PackResult:
    """Write ``listing`` (the usable images of ``split``) as webdataset shards in ``out``
    (the layout: :mod:`dalinorm.data.packs`).

    ``shuffle`` writes the images in a random order drawn from ``seed``, so each tar is a random sample of the split and a
    shuffle buffer over a few tars mixes the classes; otherwise the split's own order is kept
    (eval through the pack then yields the same tensors in the same order as the folder).
    ``num_shards`` replaces the byte limit with that many tars of equal image counts (±1):
    a multiple of the world size gives every rank the same number of images.
    Running the same command again after an interruption finishes the pack.
    """
    if len(listing.classes) > 10 ** MAX_LABEL_DIGITS:
        raise DatasetError(f"{listing.root}: {len(listing.classes)} classes; labels are limited "
                           f"to {MAX_LABEL_DIGITS} digits")
    for f in listing.files:  # before writing anything: no failure hours into a pack
        if "\n" in str(f):
            raise DatasetError(f"{f!r}: a newline in the name cannot be recorded in {SAMPLES}")
        _image_ext(f)
    order = (np.random.default_rng(seed).permutation(len(listing)).tolist() if shuffle
             else list(range(len(listing))))
    plan = _plan(listing, order, shard_size, num_shards)
    plan_id = hashlib.sha256(json.dumps(
        [listing.fingerprint(), listing.labels, [len(p) for p in plan], order]).encode()).hexdigest()[:16]
    out = Path(out)
    if (out / MANIFEST).exists():
        raise DatasetError(f"{out}: already holds a pack ({MANIFEST}); pack into an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / PROGRESS).exists():
        stray = [p.name for p in out.iterdir()]
        if stray:
            raise DatasetError(f"{out}: is not empty ({', '.join(sorted(stray)[:3])}...); pack into "
                               "an empty folder")
        write_atomically(out / PROGRESS, f"plan {plan_id}\n".encode())
    done = _read_progress(out, plan_id)
    width = max(6, len(str(len(plan) - 1)))
    key_width = max(9, len(str(len(listing) - 1)))
    bar = progress_bar(len(listing), desc=f"pack {split}", enabled=progress)
    rows: list[str] = []
    shard_entries = []
    position = 0
    total_bytes = 0
    try:
        for number, members in enumerate(plan):
            name = f"shard-{number:0{width}d}"
            tar, idx = out / f"{name}.tar", out / f"{name}.idx"
            keys = [f"{position + k:0{key_width}d}" for k in range(len(members))]
            if tar.name in done and idx.is_file():
                offsets = image_offsets(idx, len(members))
            else:
                partial = out / f"{name}.tar.partial"
                try:
                    offsets = _write_tar(listing, members, keys, partial)
                    write_index(partial, idx)
                    os.replace(partial, tar)
                except BaseException:  # Ctrl-C, SIGTERM, a bad file: no half tar is left
                    partial.unlink(missing_ok=True)
                    raise
                with open(out / PROGRESS, "a", encoding="utf-8") as journal:
                    journal.write(f"{tar.name} {tar.stat().st_size}\n")
            size = tar.stat().st_size
            total_bytes += size
            shard_entries.append({"tar": tar.name, "index": idx.name, "samples": len(members),
                                  "bytes": size})
            for i, key, offset in zip(members, keys, offsets):
                rel = listing.files[i].relative_to(listing.root).as_posix()
                rows.append(f"{key}\t{number}\t{offset}\t{listing.sizes[i]}\t{listing.labels[i]}\t{rel}")
            position += len(members)
            bar.update(len(members))
            bar.set_postfix(shards=f"{number + 1}/{len(plan)}")
    finally:
        bar.close()
    _write_manifest(out, rows, shard_entries, classes=list(listing.classes),
                    fingerprint=listing.fingerprint(), split=split, source=str(listing.root),
                    source_format=source_format, skipped_files=skipped,
                    order="shuffled" if shuffle else "listed", seed=seed if shuffle else None,
                    shard_size=None if num_shards else shard_size)
    (out / PROGRESS).unlink()
    resumed = sum(1 for e in shard_entries if e["tar"] in done)
    log.info("packed %d images into %d shards (%.1f MB) in %s%s", len(listing), len(plan),
             total_bytes / 1e6, out, f", {resumed} shards kept from an earlier run" if resumed else "")
    return PackResult(out, len(listing), len(plan), total_bytes, resumed)


def _write_manifest(out: Path, rows: list[str], shard_entries: list[dict], *, classes: list[str],
                    fingerprint: str, **facts) -> None:
    """samples.tsv, then manifest.json (last: its presence marks a finished pack)."""
    samples = ("# key\tshard\toffset\tsize\tlabel\tpath\n" + "\n".join(rows) + "\n").encode(
        "utf-8", "surrogateescape")
    write_atomically(out / SAMPLES, samples)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **facts,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "num_samples": len(rows),
        "num_shards": len(shard_entries),
        "classes": classes,
        "fingerprint": fingerprint,
        "samples_sha256": "sha256:" + hashlib.sha256(samples).hexdigest(),
        "shards": shard_entries,
    }
    write_atomically(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))


def index_tars(folder: Path, *, progress: bool = False) -> PackResult:
    """Make existing webdataset tars readable as ``data.format: webdataset``: write DALI's index
    next to each tar (unless an identical one is there), then samples.tsv and the manifest.

    Every sample needs one image member (lower-case extension from :data:`PACK_IMAGE_EXTENSIONS`) and a
    ``.cls`` member of ASCII digits (webdataset's convention, as its ``TarWriter`` writes an
    int). An image's "original path" is ``<tar name>/<member name>``; classes are the labels
    0..max as strings. The tars are read in name order and never modified.
    """
    folder = Path(folder)
    tars = sorted(folder.glob("*.tar"))
    if not tars:
        raise DatasetError(f"{folder}: no .tar files to index")
    if (folder / MANIFEST).exists():
        raise DatasetError(f"{folder}: already holds {MANIFEST}")
    bar = progress_bar(len(tars), unit="tar", desc=f"index {folder.name}", enabled=progress)
    rows, entries, listed = [], [], []
    try:
        for number, tar in enumerate(tars):
            samples = _scan_tar(tar)
            idx = tar.with_suffix(".idx")
            if _write_or_check_index(tar, idx) != len(samples):
                raise DatasetError(f"{tar}: the members of a sample are not consecutive (DALI's "
                                   "reader groups consecutive members only); re-pack the data")
            for key, (ext, offset, size), label in samples:
                rel = f"{tar.name}/{key}.{ext}"
                rows.append(f"{key}\t{number}\t{offset}\t{size}\t{label}\t{rel}")
                listed.append((rel, size, label))
            entries.append({"tar": tar.name, "index": idx.name, "samples": len(samples),
                            "bytes": tar.stat().st_size})
            bar.update(1)
    finally:
        bar.close()
    file_list = "".join(f"{size}\t{rel}\n" for rel, size, _ in sorted(listed))
    classes = [str(i) for i in range(max(label for _, _, label in listed) + 1)]
    _write_manifest(folder, rows, entries, classes=classes, fingerprint=fingerprint_of(file_list),
                    split=folder.name, source=str(folder), source_format="webdataset",
                    skipped_files=0, order="as found", seed=None, shard_size=None)
    total = sum(e["bytes"] for e in entries)
    log.info("indexed %d images in %d tars (%.1f MB) in %s", len(rows), len(tars), total / 1e6, folder)
    return PackResult(folder, len(rows), len(tars), total, 0)


def _scan_tar(tar: Path) -> list[tuple[str, tuple[str, int, int], int]]:
    """(key, (image ext, data offset, size), label) per sample of a foreign tar, checked."""
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(tar) as archive:
            for member, key, ext in sample_members(archive):
                if any(c.isspace() for c in member.name):
                    raise DatasetError(f"{tar}: member {member.name!r} has white space in its name, "
                                       "which DALI's index format cannot hold")
                samples.setdefault(key, {})[ext] = (member.offset_data, member.size)
                if ext == "cls":
                    text = archive.extractfile(member).read()
                    if not (text.isdigit() and len(text) <= MAX_LABEL_DIGITS):
                        raise DatasetError(f"{tar}: {member.name} holds {text[:20]!r}; expected the "
                                           f"label as up to {MAX_LABEL_DIGITS} ASCII digits, nothing else")
                    labels[key] = int(text)
    except (OSError, tarfile.TarError) as err:
        raise DatasetError(f"{tar}: cannot be read as a tar archive: {err}") from None
    result = []
    for key, parts in samples.items():
        images = [e for e in PACK_IMAGE_EXTENSIONS if e in parts]
        if len(images) != 1 or key not in labels:
            raise DatasetError(f"{tar}: sample {key!r} has members {sorted(parts)}; expected one image "
                               f"({'|'.join(PACK_IMAGE_EXTENSIONS)}, lower case) and one .cls")
        result.append((key, (images[0], *parts[images[0]]), labels[key]))
    if not result:
        raise DatasetError(f"{tar}: holds no sample")
    return result


def _write_or_check_index(tar: Path, idx: Path) -> int:
    """Write DALI's index of ``tar`` as ``idx`` (an index already there must be identical);
    returns its sample count."""
    fresh = idx.with_name(idx.name + ".new")
    count = write_index(tar, fresh)
    if idx.exists() and idx.read_bytes() != fresh.read_bytes():
        fresh.unlink()
        raise DatasetError(f"{idx}: exists and differs from the index of {tar.name}; move it away "
                           "to let dalinorm write its own")
    os.replace(fresh, idx)
    return count
