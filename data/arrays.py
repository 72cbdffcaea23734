"""Arrays as data (``data.format: numpy``): what a usable ``.npy`` file of a split is.

A split of arrays is an ImageFolder-like tree, ``<split>/<class>/<name>.npy``, listed by
:func:`~dalinorm.data.imagefolder.list_image_folder` with these extensions. Every array is
3-D, ``data.layout`` (HWC or CHW) with ``data.channels`` channels of ``data.dtype``; the
graphs read them with DALI's numpy decoder, which takes NumPy format version 1.0 only and,
given no dtype, refuses a batch of mixed types rather than casting. :func:`array_problem`
names what a file has against what the config expects, from its header (and, for float32,
its values: NaN or infinity would poison every sum of the statistics).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ARRAY_EXTENSIONS", "array_full_scale", "array_problem", "load_array"]

ARRAY_EXTENSIONS: tuple[str, ...] = (".npy",)

# The value that maps to 1.0 on the [0, 1] scale: what ToTensor does for 8 bits, the 16-bit
# range for uint16, and float32 arrays as they are stored (their unit is the user's).
_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}


def array_full_scale(dtype: str) -> float:
    """The stored value that is 1.0 on the [0, 1] scale for ``data.dtype``."""
    return _FULL_SCALE[dtype]


def load_array(path: str | Path, *, layout: str = "HWC"):
    """The array of a ``.npy`` file as HWC (``layout`` says how it is stored), no pickles."""
    import numpy as np

    array = np.load(path, allow_pickle=False)
    return array.transpose(1, 2, 0) if layout == "CHW" else array


def array_problem(path: str | Path, *, dtype: str, channels: int, layout: str,
                  max_pixels: int) -> str | None:
    """Why ``path`` is not a usable array of the declared kind, or None.

    Checked: the NumPy magic and a version-1.0 header (what DALI decodes), 3 dimensions,
    ``channels`` on the channel axis of ``layout``, ``dtype`` exactly, the data present in
    full, at most ``max_pixels`` pixels, and for float32 only finite values.
    """
    import numpy as np
    from numpy.lib import format as npformat

    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as handle:
            if size == 0:
                return "empty file (0 bytes)"
            try:
                version = npformat.read_magic(handle)
            except ValueError:
                return "not a .npy file (no NumPy magic string)"
            if version != (1, 0):
                return (f"NumPy format version {version[0]}.{version[1]}; DALI's numpy decoder reads "
                        "1.0 only (np.save writes 1.0 unless the header is over 64 KiB)")
            try:
                shape, fortran, found = npformat.read_array_header_1_0(handle)
            except ValueError as err:
                return f"not a valid .npy header: {err}"
            offset = handle.tell()
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if found.hasobject or found.fields is not None:
        return f"dtype {found} (objects or records) is not an image array; expected {dtype}"
    if found.str.lstrip("<>=|") != np.dtype(dtype).str.lstrip("<>=|") or (
            found.byteorder == ">" and found.itemsize > 1):
        return f"dtype {found.str} ({found}), expected {dtype} (data.dtype, little-endian)"
    if len(shape) != 3:
        return f"{len(shape)}-D array of shape {list(shape)}, expected 3-D {layout} (data.layout)"
    axis = 2 if layout == "HWC" else 0
    if shape[axis] != channels:
        return (f"{shape[axis]} channels (shape {list(shape)} as {layout}), expected {channels} "
                "(data.channels)")
    height, width = (shape[0], shape[1]) if layout == "HWC" else (shape[1], shape[2])
    if height == 0 or width == 0:
        return f"empty array of shape {list(shape)}"
    if height * width > max_pixels:
        return (f"too large: {width}×{height} = {height * width:,} pixels > data.max_pixels "
                f"({max_pixels:,})")
    needed = offset + int(np.prod(shape)) * found.itemsize
    if size < needed:
        return f"truncated: {size} bytes, the header promises {needed}"
    if dtype == "float32":
        values = np.load(path, mmap_mode="r", allow_pickle=False)
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.isnan(values).sum())
            inf = int(values.size - finite.sum()) - nan
            return (f"float32 array holds {nan} NaN and {inf} infinite values; expected finite "
                    "values only (they would poison every statistic)")
    del fortran  # DALI's decoder reads Fortran order too
    return None
