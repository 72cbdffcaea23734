"""``dalinorm check-data``: find every file of a split that the pipelines cannot use.

Cheap checks run in a thread pool (size, header bytes, PIL's header parse for mode and
size), then every remaining file is decoded by the same DALI decoder the pipelines use, in
batches; a batch that fails is decoded again file by file to name the culprit.

What counts as data and what as junk (README's table is generated from the same rules):

=========================================  =========================================
file                                       verdict
=========================================  =========================================
JPEG (baseline, progressive, 4:2:0/4:4:4)  data
grayscale JPEG, CMYK JPEG                  data, decoded as RGB (DALI and PIL agree)
PNG, BMP, WebP, TIFF (also named .jpg)     data: both decoders go by content
RGBA PNG                                   data, alpha dropped (DALI and PIL agree)
1×1 image, symlinked image, non-ASCII or   data
spaces in the name
16-bit PNG                                 junk: DALI scales to 8 bits, PIL clips
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

from dalinorm.config import Config
from dalinorm.pipelines.device import resolve_device_id
from dalinorm.pipelines.files import CHECKED_LIST_HEADER, SplitListing, list_split

log = logging.getLogger(__name__)

__all__ = ["BadFile", "CheckReport", "check_files", "check_split", "format_checked_list"]

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


def cheap_check(path: Path, max_pixels: int) -> str | None:
    """The reason ``path`` is unusable, from its size and header alone; None if it may be."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if size == 0:
        return "empty file (0 bytes)"
    kind = _sniff(head)
    if kind is None:
        return "not an image (unknown header bytes)"
    if kind == "GIF":
        return "GIF is not decoded by DALI; convert it to PNG or JPEG"
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            mode = img.mode
    except Exception as err:  # PIL raises many types for broken headers
        return f"{kind} header cannot be parsed: {err}"
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return (f"{mode} ({'16-bit' if '16' in mode else '32-bit'}) image: DALI scales it to 8 bits, "
                "torchvision/PIL clip it; convert it to 8-bit")
    if width * height > max_pixels:
        return f"too large: {width}×{height} = {width * height:,} pixels > data.max_pixels ({max_pixels:,})"
    return None


def _decode_batches(files: list[Path], cfg: Config, device_id: int | None, batch: int):
    """Decode ``files`` with the pipelines' decoder; yield (files, error or None) per batch.

    One pipeline reads the files in order, batch after batch; only when a batch fails are its
    files decoded one by one to name the culprit, and a new pipeline takes over after it.
    """
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline

    def build(chunk: list[Path], size: int):
        pipe = Pipeline(batch_size=size, num_threads=cfg.loader.num_threads, device_id=device_id,
                        prefetch_queue_depth=1, exec_pipelined=False, exec_async=False)
        with pipe:
            jpegs, _ = fn.readers.file(files=[str(f) for f in chunk], pad_last_batch=True)
            images = fn.decoders.image(jpegs, device="cpu" if device_id is None else "mixed",
                                       output_type=types.RGB,
                                       adjust_orientation=cfg.data.exif == "apply")
            pipe.set_outputs(images)
        pipe.build()
        return pipe

    start = 0
    while start < len(files):
        rest = files[start:]
        pipe = build(rest, min(batch, len(rest)))
        for offset in range(0, len(rest), batch):
            chunk = rest[offset:offset + batch]
            try:
                pipe.run()
                yield chunk, None
            except RuntimeError:  # the pipeline is unusable now: check this batch file by file
                for path in chunk:
                    try:
                        build([path], 1).run()
                        yield [path], None
                    except RuntimeError as err:
                        yield [path], err
                start += offset + len(chunk)
                break
        else:
            start = len(files)


def _decode_reason(path: Path, err: Exception) -> str:
    """Why DALI could not decode ``path``: PIL's full decode tells a truncated file apart."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except OSError as pil_err:
        if "truncated" in str(pil_err):
            return "truncated (the file ends before the image data does)"
    except Exception:
        pass
    lines = [l.strip() for l in str(err).splitlines() if l.strip() and "no longer valid" not in l]
    return "cannot be decoded by DALI: " + (lines[-1] if lines else "decoder error")


def check_files(files: list[Path], cfg: Config, *, progress: bool = False,
                desc: str = "check") -> list[BadFile]:
    """Every unusable file among ``files``, with its reason."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files) * 2, unit="step", desc=desc, dynamic_ncols=True)
    bad: list[BadFile] = []
    with ThreadPoolExecutor(max_workers=max(2, cfg.loader.num_threads)) as pool:
        reasons = pool.map(lambda f: cheap_check(f, cfg.data.max_pixels), files, chunksize=64)
        candidates = []
        for path, reason in zip(files, reasons):
            if reason:
                bad.append(BadFile(path, reason))
            else:
                candidates.append(path)
            if bar:
                bar.update(1)
    if bar:
        bar.update(len(files) - len(candidates))
    device_id = resolve_device_id(cfg.loader.device)
    for chunk, err in _decode_batches(candidates, cfg, device_id, cfg.loader.batch_size):
        if err is not None:
            bad.append(BadFile(chunk[0], _decode_reason(chunk[0], err)))
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    order = {f: i for i, f in enumerate(files)}
    return sorted(bad, key=lambda b: order[b.path])


def check_split(cfg: Config, split: str, *, progress: bool = False) -> CheckReport:
    listing = list_split(cfg, split)
    return CheckReport(split, listing, check_files(list(listing.files), cfg, progress=progress,
                                                   desc=f"check {split}"))


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
