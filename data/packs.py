"""Webdataset packs: tar shards of images and ``.cls`` labels, DALI index files, a manifest.

The pack format: what ``dalinorm pack`` writes (:mod:`dalinorm.data.pack_writer`) and
DALI's ``readers.webdataset`` reads::

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
import json
from pathlib import Path

from dalinorm.data.listing import IMAGE_EXTENSIONS, SplitListing, TarShard
from dalinorm.errors import DatasetError

__all__ = ["FORMAT", "MANIFEST", "MAX_LABEL_DIGITS", "PACK_IMAGE_EXTENSIONS", "PROGRESS", "SAMPLES",
           "VERSION", "read_pack"]

MANIFEST = "manifest.json"
SAMPLES = "samples.tsv"
PROGRESS = ".pack-progress"
FORMAT = "dalinorm-webdataset"
VERSION = 1
# IMAGE_EXTENSIONS as the extensions of a sample's image member (DALI matches them
# case-sensitively; the packer writes them in lower case), so every image of a split packs.
PACK_IMAGE_EXTENSIONS = tuple(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)
MAX_LABEL_DIGITS = 8  # the in-graph .cls parser reads up to 8 decimal digits


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
                           offsets=tuple(offsets), pack_id=manifest["samples_sha256"],
                           # samples.tsv has the sha256 the manifest recorded, and the manifest's
                           # fingerprint was computed from the same lines when packing
                           recorded_fingerprint=manifest["fingerprint"])
    return listing
