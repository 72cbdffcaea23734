"""Webdataset packs: tar shards of images and ``.cls`` labels, DALI index files, a manifest.

``dalinorm pack`` turns a split (ImageFolder or file list) into a folder DALI's
``readers.webdataset`` reads::

    DIR/shard-000000.tar   members 000000000.jpg, 000000000.cls, 000000001.png, ...
    DIR/shard-000000.idx   DALI's index (format v1.2: where each member starts, its size)
    DIR/samples.tsv        one line per image, in tar order: key, shard, offset, size, label,
                           the image's original path (relative to the split it came from)
    DIR/manifest.json      counts, class names, shards with their sizes, the fingerprint,
                           and the sha256 of samples.tsv

The fingerprint is the one :meth:`SplitListing.fingerprint` gives the source split (sha256
over the original relative paths and sizes), so a stats file computed on the ImageFolder
stays valid for its pack and the leak guard compares like with like. Each tar is written
under a temporary name and renamed when complete, its index written atomically, and
``.pack-progress`` records finished shards: an interrupted pack resumes where it stopped,
and the manifest appears last, so a half-written pack is never read as a whole one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dalinorm.config import Config, UsageError
from dalinorm.pipelines.files import (
    DatasetError,
    SplitListing,
    TarShard,
    fingerprint_of,
    read_source,
    usable_listing,
)

log = logging.getLogger(__name__)

__all__ = ["MANIFEST", "PackResult", "index_shards", "pack_split", "parse_size", "read_pack",
           "write_index"]

MANIFEST = "manifest.json"
SAMPLES = "samples.tsv"
PROGRESS = ".pack-progress"
FORMAT = "dalinorm-webdataset"
VERSION = 1
# Extensions of the image member in a sample (DALI matches them case-sensitively; the packer
# writes them in lower case). ImageFolder's extensions, so every image of a split packs.
IMAGE_EXTS = ("jpg", "jpeg", "png", "ppm", "bmp", "pgm", "tif", "tiff", "webp")
MAX_LABEL_DIGITS = 8  # the in-graph .cls parser reads up to 8 decimal digits
_TAR_BLOCK = 512
_TAR_RECORD = 20 * _TAR_BLOCK


# --------------------------------------------------------------------------- reading


def read_pack(split_dir: Path, *, key: str = "data.root") -> SplitListing:
    """The listing of a pack written by ``dalinorm pack``, checked against its manifest.

    Raises :class:`DatasetError` naming the file when the manifest is missing or unreadable,
    a shard is missing or has another size than the manifest says, or samples.tsv does not
    match the manifest (a modified or mixed-up pack).
    """
    split_dir = Path(split_dir)
    manifest_path = split_dir / MANIFEST
    if not manifest_path.is_file():
        if (split_dir / PROGRESS).exists():
            raise DatasetError(f"{key}: {split_dir} is an unfinished pack; run the same `dalinorm "
                               "pack` command again to finish it")
        what = "does not exist" if not split_dir.exists() else f"holds no {MANIFEST}"
        raise DatasetError(f"{key}: {split_dir} {what}; data.format: webdataset reads folders "
                           "written by `dalinorm pack`, or tars indexed by `dalinorm index DIR`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"{manifest_path}: cannot be read as JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{manifest_path}: not a dalinorm pack manifest (expected "
                           f"'format': '{FORMAT}')")
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{manifest_path}: pack version {manifest.get('version')!r} is not "
                           f"supported (expected {VERSION}); re-pack with this dalinorm")
    missing = [k for k in ("shards", "classes", "num_samples", "fingerprint", "samples_sha256")
               if k not in manifest]
    if missing:
        raise DatasetError(f"{manifest_path}: no {', '.join(missing)} (a damaged manifest); re-pack")
    samples_path = split_dir / SAMPLES
    try:
        raw = samples_path.read_bytes()
    except OSError as err:
        raise DatasetError(f"{samples_path}: cannot be read: {err.strerror or err}") from None
    if "sha256:" + hashlib.sha256(raw).hexdigest() != manifest.get("samples_sha256"):
        raise DatasetError(f"{samples_path}: does not match {MANIFEST} (modified after packing?); "
                           "re-pack the split")
    shards = []
    start = 0
    for entry in manifest["shards"]:
        if not isinstance(entry, dict) or not {"tar", "index", "bytes", "samples"} <= entry.keys():
            raise DatasetError(f"{manifest_path}: a shard entry lacks tar, index, bytes or samples "
                               f"({entry!r}); re-pack")
        tar, idx = split_dir / entry["tar"], split_dir / entry["index"]
        try:
            size = tar.stat().st_size
        except OSError:
            raise DatasetError(f"{tar}: tar shard listed in {manifest_path} is missing") from None
        if size != entry["bytes"]:
            raise DatasetError(f"{tar}: {size} bytes, but {MANIFEST} says {entry['bytes']} "
                               "(truncated or replaced?); re-pack the split")
        try:
            with open(idx, encoding="utf-8") as handle:
                header = handle.readline().split()
        except OSError:
            raise DatasetError(f"{idx}: index file listed in {manifest_path} is missing") from None
        if header != ["v1.2", str(entry["samples"])]:
            raise DatasetError(f"{idx}: header {' '.join(header)!r}, expected 'v1.2 {entry['samples']}' "
                               f"(an index of another tar?); re-pack")
        shards.append(TarShard(tar, idx, start, entry["samples"]))
        start += entry["samples"]
    files, labels, sizes, offsets = [], [], [], []
    for line in raw.decode("utf-8", "surrogateescape").split("\n"):  # names may hold \r etc.
        if not line or line.startswith("#"):
            continue
        _key, _shard, offset, size, label, rel = line.split("\t", 5)
        files.append(split_dir / rel)
        labels.append(int(label))
        sizes.append(int(size))
        offsets.append(int(offset))
    if len(files) != start or len(files) != manifest["num_samples"]:
        raise DatasetError(f"{samples_path}: {len(files)} images, but the shards in {MANIFEST} "
                           f"hold {start}; re-pack the split")
    listing = SplitListing(root=split_dir, classes=tuple(manifest["classes"]), files=tuple(files),
                           labels=tuple(labels), sizes=tuple(sizes), shards=tuple(shards),
                           offsets=tuple(offsets), pack_id=manifest["samples_sha256"])
    # samples.tsv has the sha256 the manifest recorded, and the manifest's fingerprint was
    # computed from the same lines when packing: reuse it (recomputing costs seconds at 1M)
    object.__setattr__(listing, "_fingerprint", manifest["fingerprint"])
    return listing


# --------------------------------------------------------------------------- writing


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


def _split_name(name: str) -> tuple[str, str]:
    """A member name → (sample key, extension), split at the first dot of the last path
    component, as DALI's webdataset reader and its ``wds2idx`` do."""
    dot = name.find(".", name.rfind("/") + 1)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def _sample_members(archive: tarfile.TarFile):
    """(member, sample key, extension) of the regular files that form samples, in tar order
    (hidden files skipped, as DALI's ``wds2idx`` skips them)."""
    for member in archive:
        if not member.isreg():
            continue
        key, ext = _split_name(member.name)
        if key and not key.endswith("/"):
            yield member, key, ext


def write_index(tar_path: Path, index_path: Path) -> int:
    """Write DALI's index (format v1.2) of ``tar_path``; returns the number of samples.

    One line per sample (consecutive members with the same key): ``ext offset size name``
    for each component, offsets where the member's data starts.
    """
    from dalinorm.stats.file import write_atomically

    samples: list[list[tuple[str, int, int, str]]] = []
    last = None
    with tarfile.open(tar_path) as archive:
        for member, key, ext in _sample_members(archive):
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


@dataclass(frozen=True)
class PackResult:
    out: Path
    num_samples: int
    num_shards: int
    bytes: int
    resumed_shards: int


def _image_ext(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    if ext not in IMAGE_EXTS:
        raise DatasetError(f"{path}: cannot be packed: extension {path.suffix!r} is not one of "
                           f"{', '.join(IMAGE_EXTS)}")
    return ext


def _write_tar(listing: SplitListing, members: list[int], keys: list[str], path: Path) -> list[int]:
    """Write one tar (reproducibly: fixed owner, mode and time); return each image's data offset."""
    offsets = []
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for i, key in zip(members, keys):
            data = read_source(listing.source(i))
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
    """Write ``split`` as webdataset shards in ``out`` (see the module docstring).

    ``shuffle`` (default: for the training split) writes the images in a random order drawn
    from ``seed`` (default ``loader.seed``), so each tar is a random sample of the split and a
    shuffle buffer over a few tars mixes the classes; otherwise the split's own order is kept
    (eval through the pack then yields the same tensors in the same order as the folder).
    ``num_shards`` replaces the byte limit with that many tars of equal image counts (±1):
    a multiple of the world size gives every rank the same number of images.
    Running the same command again after an interruption finishes the pack.
    """
    from dalinorm.stats.file import write_atomically

    if cfg.data.format == "webdataset":
        raise DatasetError("data.format: the source of `dalinorm pack` is an imagefolder or "
                           "file_list split; this config already reads a webdataset pack")
    listing, skipped = usable_listing(cfg, split)
    if len(listing.classes) > 10 ** MAX_LABEL_DIGITS:
        raise DatasetError(f"{listing.root}: {len(listing.classes)} classes; labels are limited "
                           f"to {MAX_LABEL_DIGITS} digits")
    for f in listing.files:  # before writing anything: no failure hours into a pack
        if "\n" in str(f):
            raise DatasetError(f"{f!r}: a newline in the name cannot be recorded in {SAMPLES}")
        _image_ext(f)
    shuffle = cfg.is_training_split(split) if shuffle is None else shuffle
    seed = cfg.loader.seed if seed is None else seed
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
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(listing), unit="img", desc=f"pack {split}", dynamic_ncols=True)
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
                offsets = _offsets_from_index(idx, len(members))
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
            if bar:
                bar.update(len(members))
                bar.set_postfix(shards=f"{number + 1}/{len(plan)}")
    finally:
        if bar:
            bar.close()
    _write_manifest(out, rows, shard_entries, classes=list(listing.classes),
                    fingerprint=listing.fingerprint(), split=split, source=str(listing.root),
                    source_format=cfg.data.format, skipped_files=skipped,
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
    from dalinorm.stats.file import write_atomically

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


def index_shards(folder: Path, *, progress: bool = False) -> PackResult:
    """Make existing webdataset tars readable as ``data.format: webdataset``: write DALI's index
    next to each tar (unless an identical one is there), then samples.tsv and the manifest.

    Every sample needs one image member (lower-case extension from :data:`IMAGE_EXTS`) and a
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
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tars), unit="tar", desc=f"index {folder.name}", dynamic_ncols=True)
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
            if bar:
                bar.update(1)
    finally:
        if bar:
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
            for member, key, ext in _sample_members(archive):
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
        images = [e for e in IMAGE_EXTS if e in parts]
        if len(images) != 1 or key not in labels:
            raise DatasetError(f"{tar}: sample {key!r} has members {sorted(parts)}; expected one image "
                               f"({'|'.join(IMAGE_EXTS)}, lower case) and one .cls")
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


def _offsets_from_index(idx: Path, expected: int) -> list[int]:
    """Image data offsets of a finished shard, from its index file."""
    lines = idx.read_text(encoding="utf-8").splitlines()[1:]
    offsets = []
    for line in lines:
        fields = line.split()
        for k in range(0, len(fields), 4):
            if fields[k] in IMAGE_EXTS:
                offsets.append(int(fields[k + 1]))
    if len(offsets) != expected:
        raise DatasetError(f"{idx}: {len(offsets)} images, expected {expected}; delete the shard "
                           "and run the pack again")
    return offsets
