"""``dalinorm check-data``: find every file of a split that the pipelines cannot use.

Cheap checks run in a thread pool (size, header bytes, PIL's header parse for mode and
size), then every remaining file is decoded by the same DALI decoder the pipelines use, in
batches; a batch that fails is decoded again file by file to name the culprit.

What counts as data and what as junk (README's table says the same):

=========================================  =========================================
file                                       verdict
=========================================  =========================================
JPEG (baseline, progressive, 4:2:0/4:4:4)  data
grayscale JPEG, CMYK JPEG                  data, decoded as RGB (DALI and PIL agree)
PNG, BMP, WebP, TIFF (also named .jpg)     data: both decoders go by content
RGBA PNG                                   data, alpha dropped (DALI and PIL agree)
1×1 image, symlinked image, non-ASCII or   data
spaces in the name
16-bit PNG or TIFF                         data with data.dtype uint16 (read exactly);
                                           junk with uint8 (DALI would scale it to 8 bits)
8-bit file with data.dtype uint16          junk (DALI would scale it by 257)
RGB file, data.channels 1                  data, converted as PIL's convert("L") does
grayscale file, data.channels 3            data, replicated to R = G = B
empty file, random bytes, truncated file   junk
more than data.max_pixels pixels           junk (decompression-bomb guard)
.txt, .DS_Store, other extensions          not listed (as torchvision's ImageFolder)
=========================================  =========================================
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dalinorm.atomic import write_atomically
from dalinorm.config import Config
from dalinorm.data.listing import ImageSource, SplitListing
from dalinorm.data.splits import CHECKED_LIST_HEADER, list_split
from dalinorm.data.sample_type import bit_depth_mismatch, read_sample_type
from dalinorm.pipelines.device import resolve_device_id
from dalinorm.pipelines.kinds import decode_kind_args
from dalinorm.pipelines.readers import read_encoded
from dalinorm.pipelines.run import explain_pipeline_error, is_file_error, last_dali_line
from dalinorm.pipelines.specs import GraphSpec, decoder_args, import_dali
from dalinorm.progress import progress_bar

log = logging.getLogger(__name__)

__all__ = ["BadFile", "CheckReport", "check_files", "check_split", "format_checked_list",
           "write_split_check"]

_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"P5", "PGM"),
    (b"P6", "PPM"),
)


@dataclass(frozen=True)
class BadFile:
    path: Path
    reason: str
    where: str = ""  # in a pack: the tar and position, with the original path

    def __str__(self) -> str:
        return f"{self.where or self.path}: {self.reason}"


@dataclass
class CheckReport:
    split: str
    listing: SplitListing
    bad: list[BadFile]

    @property
    def good(self) -> list[Path]:
        bad = {b.path for b in self.bad}
        return [f for f in self.listing.files if f not in bad]


def _sniff(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def cheap_check(source: ImageSource | str | Path, max_pixels: int,
                dtype: str = "uint8") -> str | None:
    """The reason an image is unusable, from its size and header alone; None if it may be.
    ``source``: a path, or where an image's bytes are (a file or a member of a pack);
    ``dtype``: ``data.dtype``, the bits per sample every file must have."""
    import io

    from PIL import Image

    if not isinstance(source, ImageSource):
        source = ImageSource(str(source))
    try:
        if source.in_tar:
            data = source.read()
            size, head = len(data), data[:16]
            found = read_sample_type(data)

            def open_image():
                return Image.open(io.BytesIO(data))
        else:
            size = Path(source.path).stat().st_size
            with open(source.path, "rb") as handle:
                head = handle.read(16)
            found = read_sample_type(source.path) if size else None

            def open_image():
                return Image.open(source.path)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if size == 0:
        return "empty file (0 bytes)"
    kind = _sniff(head)
    if kind is None:
        return "not an image (unknown header bytes)"
    if kind == "GIF":
        return "GIF is not decoded by DALI; convert it to PNG or JPEG"
    try:
        with open_image() as img:
            width, height = img.size
            mode = img.mode
    except Exception as err:  # PIL raises many types for broken headers
        return f"{kind} header cannot be parsed: {err}"
    mismatch = bit_depth_mismatch(found, dtype)
    if mismatch:
        return mismatch
    if mode in ("I", "F"):
        return (f"{mode} (32-bit) image: DALI decodes 8 or 16 bits per sample; convert it to "
                "16-bit (data.dtype uint16) or 8-bit")
    if width * height > max_pixels:
        return f"too large: {width}×{height} = {width * height:,} pixels > data.max_pixels ({max_pixels:,})"
    return None


def _decode_batches(sources: list[ImageSource], cfg: Config, device_id: int | None, batch: int):
    """Decode ``sources`` with the pipelines' reader and decoder; yield (indices, error or
    None) per batch.

    One pipeline reads the images in order, batch after batch; only when a batch fails are its
    images decoded one by one to name the culprit, and a new pipeline takes over after it.
    Files are read by the graphs' file reader; members of a pack are read here and fed in
    (the tar reader cannot leave out the images the cheap checks already refused).
    """
    import numpy as np

    fn, types, Pipeline = import_dali()

    def build(chunk: list[int], size: int):
        spec = GraphSpec(files=[sources[i].path for i in chunk], labels=[0] * len(chunk),
                         device_id=device_id, seed=0)
        pipe = Pipeline(batch_size=size, num_threads=cfg.loader.num_threads, device_id=device_id,
                        prefetch_queue_depth=1, exec_pipelined=False, exec_async=False)
        with pipe:
            if not any(sources[i].in_tar for i in chunk):
                encoded, _ = read_encoded(spec, shuffle=False)
            else:
                def batches():
                    for at in range(0, len(chunk), size):
                        yield [np.frombuffer(sources[i].read(), dtype=np.uint8)
                               for i in chunk[at:at + size]]

                encoded = fn.external_source(source=batches, dtype=types.UINT8, ndim=1)
            images = fn.decoders.image(encoded, **decoder_args(cfg, spec), **decode_kind_args(cfg),
                                       adjust_orientation=cfg.data.exif == "apply")
            pipe.set_outputs(images)
        pipe.build()
        return pipe

    todo = list(range(len(sources)))
    start = 0
    while start < len(todo):
        rest = todo[start:]
        try:
            pipe = build(rest, min(batch, len(rest)))
        except RuntimeError as err:
            raise explain_pipeline_error(err) from err
        for offset in range(0, len(rest), batch):
            chunk = rest[offset:offset + batch]
            try:
                pipe.run()
                yield chunk, None
            except RuntimeError:  # the pipeline is unusable now: check this batch one by one
                for i in chunk:
                    try:
                        build([i], 1).run()
                        yield [i], None
                    except RuntimeError as err:
                        if not is_file_error(err):  # memory, a build failure: not this file's fault
                            raise explain_pipeline_error(err) from err
                        yield [i], err
                start += offset + len(chunk)
                break
        else:
            start = len(todo)


def _decode_reason(source, err: Exception) -> str:
    """Why DALI could not decode an image: PIL's full decode tells a truncated file apart."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source.read())) as img:
            img.load()
    except OSError as pil_err:
        if "truncated" in str(pil_err):
            return "truncated (the file ends before the image data does)"
    except Exception:
        pass
    return "cannot be decoded by DALI: " + last_dali_line(err)


def _check_arrays(names: list[Path], sources: list, cfg: Config, *, progress: bool,
                  desc: str) -> list[BadFile]:
    """``data.format: numpy`` or ``tiff``: every array that is not of the declared kind (its
    header against data.dtype, data.channels and data.layout; float32 values all finite),
    with the reason naming what was found and what was expected
    (:func:`~dalinorm.data.arrays.file_problem`). No DALI stage: the header checks cover what
    DALI's decoders refuse or silently get wrong (docs/KINDS.md)."""
    from dalinorm.data.arrays import file_problem

    bar = progress_bar(len(sources), unit="file", desc=desc, enabled=progress)

    def problem(source):
        return file_problem(source.path, cfg.data)

    bad = []
    with ThreadPoolExecutor(max_workers=max(2, cfg.loader.num_threads)) as pool:
        for name, reason in zip(names, pool.map(problem, sources, chunksize=64)):
            if reason:
                bad.append(BadFile(name, reason))
            bar.update(1)
    bar.close()
    return bad


def _check(names: list[Path], sources: list, cfg: Config, *, progress: bool, desc: str,
           where=None) -> list[BadFile]:
    """Every unusable image among ``sources`` (reported under ``names``, and ``where(i)`` if
    given), with its reason."""
    if cfg.data.reads_arrays:
        return _check_arrays(names, sources, cfg, progress=progress, desc=desc)
    bar = progress_bar(len(sources) * 2, unit="step", desc=desc, enabled=progress)
    bad: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(2, cfg.loader.num_threads)) as pool:
        reasons = pool.map(lambda s: cheap_check(s, cfg.data.max_pixels, cfg.data.dtype), sources,
                           chunksize=64)
        candidates = []
        for i, reason in enumerate(reasons):
            if reason:
                bad[i] = reason
            else:
                candidates.append(i)
            bar.update(1)
    bar.update(len(sources) - len(candidates))
    device_id = resolve_device_id(cfg.loader.device)
    for chunk, err in _decode_batches([sources[i] for i in candidates], cfg, device_id,
                                      cfg.loader.batch_size):
        if err is not None:
            i = candidates[chunk[0]]
            bad[i] = _decode_reason(sources[i], err)
        bar.update(len(chunk))
    bar.close()
    return [BadFile(names[i], bad[i], where(i) if where else "") for i in sorted(bad)]


def check_files(files: list[Path], cfg: Config, *, progress: bool = False,
                desc: str = "check") -> list[BadFile]:
    """Every unusable file among ``files``, with its reason."""
    return _check(list(files), [ImageSource(str(f)) for f in files], cfg, progress=progress, desc=desc)


def check_split(cfg: Config, split: str, *, progress: bool = False) -> CheckReport:
    """Every unusable image of ``split`` in any ``data.format``. In a webdataset pack an image
    is reported under its original path and read from its tar."""
    listing = list_split(cfg, split)
    sources = listing.sources()
    return CheckReport(split, listing, _check(list(listing.files), sources, cfg, progress=progress,
                                              desc=f"check {split}",
                                              where=listing.describe if listing.packed else None))


def format_checked_list(reports: Iterable[CheckReport], root: Path) -> str:
    """The list for ``data.checked_list``: good files relative to data.root; bad ones as
    comments with their reason, so nothing is dropped silently."""
    reports = list(reports)
    good = sum(len(r.good) for r in reports)
    bad = sum(len(r.bad) for r in reports)
    lines = [f"{CHECKED_LIST_HEADER}: {good} good, {bad} bad files under {root}"]
    for report in reports:
        lines += [f"# bad: {b.path.relative_to(root).as_posix()}: {b.reason}" for b in report.bad]
    for report in reports:
        lines += [f.relative_to(root).as_posix() for f in report.good]
    return "\n".join(lines) + "\n"


def write_split_check(cfg: Config, split: str, listing: SplitListing, path: Path, key: str) -> None:
    """Check every image of ``listing`` (with a progress bar) and write the checked list to
    ``path`` atomically, ``key`` as its second line (``data.on_bad_file: skip`` without
    ``data.checked_list``: pipelines/usable.py decides where, and when the list is stale)."""
    sources = listing.sources()
    bad = _check(list(listing.files), sources, cfg, progress=True, desc=f"check {split}",
                 where=listing.describe if listing.packed else None)
    head, rest = format_checked_list([CheckReport(split, listing, bad)], cfg.data.root).split("\n", 1)
    write_atomically(path, f"{head}\n{key}\n{rest}".encode("utf-8", "surrogateescape"))
    for b in bad:
        log.info("unusable, skipped: %s", b)
    log.info("data.on_bad_file: skip: %d of %d files of %s are unusable and skipped; the list "
             "(with the reasons) is %s", len(bad), len(listing), listing.root, path)

