"""The sample type an image file declares in its header: bits per sample and channels.

DALI cannot tell it in the graph: with ``dtype=UINT16`` it returns an 8-bit file scaled by
257, without it a 16-bit file scaled to 8 bits, silently (measured on DALI 2.4.0). So the
declared ``data.dtype`` is checked against each file's header before any pipeline runs:
a PNG's IHDR chunk (bit depth, colour type), a TIFF's BitsPerSample and SamplesPerPixel
tags (read by PIL without decoding), and 8 bits for every other format DALI decodes (JPEG,
BMP, WebP, PNM at 8 bits). Reading a header costs one ``open`` and a few dozen bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SampleType", "bit_depth_mismatch", "expected_bits", "read_sample_type"]

_PNG_COLOURS = {0: ("grayscale", 1), 2: ("RGB", 3), 3: ("palette", 3), 4: ("grayscale+alpha", 2),
                6: ("RGBA", 4)}


@dataclass(frozen=True)
class SampleType:
    """What a file holds: ``bits`` per sample, ``channels`` as stored, and a short name
    (``16-bit grayscale PNG``) for messages."""

    bits: int
    channels: int
    kind: str

    def __str__(self) -> str:
        return self.kind


def expected_bits(dtype: str) -> int:
    """Bits per sample that ``data.dtype`` asks of every file."""
    return 16 if dtype == "uint16" else 8


def read_sample_type(data: bytes | str | Path) -> SampleType | None:
    """The sample type of an encoded image (its bytes, or a path whose header is read), or
    None when the header is not one this module knows (the decoder then judges the file)."""
    if not isinstance(data, bytes):
        with open(data, "rb") as handle:
            head = handle.read(32)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                handle.seek(0)
                return _tiff_type(handle)
        data = head
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26 and data[12:16] == b"IHDR":
        bits, colour = data[24], data[25]
        name, channels = _PNG_COLOURS.get(colour, (f"colour type {colour}", 0))
        if colour == 3:
            bits = 8  # a palette's entries are 8-bit RGB whatever the index width
        return SampleType(bits, channels, f"{bits}-bit {name} PNG")
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_type(io.BytesIO(data))
    if data[:3] == b"\xff\xd8\xff":
        return SampleType(8, 3, "8-bit JPEG")
    if data[:2] == b"BM" or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return SampleType(8, 3, "8-bit image")
    return None


def _tiff_type(handle) -> SampleType | None:
    from PIL import Image

    try:
        with Image.open(handle) as img:
            tags = img.tag_v2
            bits = tags.get(258, (1,))
            channels = int(tags.get(277, len(bits) if isinstance(bits, tuple) else 1))
    except Exception:  # a broken header: the decoder names the file
        return None
    bits = int(max(bits) if isinstance(bits, tuple) else bits)
    return SampleType(bits, channels, f"{bits}-bit {channels}-channel TIFF")


def bit_depth_mismatch(found: SampleType | None, dtype: str) -> str | None:
    """The reason a file does not fit ``data.dtype`` (found vs expected), or None."""
    if found is None:
        return None
    want = expected_bits(dtype)
    if (found.bits <= 8) == (want == 8):  # 1-, 2- and 4-bit files decode as 8-bit levels
        return None
    return (f"{found} ({found.bits} bits per sample), but data.dtype is {dtype} ({want}-bit "
            f"samples); dalinorm never rescales bit depths: convert the file, or set data.dtype "
            f"{'uint8' if found.bits <= 8 else 'uint16'} for a dataset of such files")
