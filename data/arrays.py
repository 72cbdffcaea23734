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

__all__ = ["ARRAY_EXTENSIONS", "TIFF_EXTENSIONS", "array_full_scale", "array_problem",
           "extensions_of", "file_problem", "load_array", "tiff_problem"]

ARRAY_EXTENSIONS: tuple[str, ...] = (".npy",)
TIFF_EXTENSIONS: tuple[str, ...] = (".tif", ".tiff")


def extensions_of(data_format: str) -> tuple[str, ...]:
    """The file endings an array split of ``data.format`` (numpy or tiff) lists."""
    return TIFF_EXTENSIONS if data_format == "tiff" else ARRAY_EXTENSIONS

# The value that maps to 1.0 on the [0, 1] scale: what ToTensor does for 8 bits, the 16-bit
# range for uint16, and float32 arrays as they are stored (their unit is the user's).
_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}


def array_full_scale(dtype: str) -> float:
    """The stored value that is 1.0 on the [0, 1] scale for ``data.dtype``."""
    return _FULL_SCALE[dtype]


def load_array(path: str | Path, *, data_format: str = "numpy", layout: str = "HWC"):
    """The array of a ``.npy`` file (no pickles; ``layout`` says how it is stored) or of a
    TIFF (tifffile), as HWC, read independently of DALI."""
    import numpy as np

    if data_format == "tiff":
        import tifffile

        array = tifffile.imread(path)
        return array[..., None] if array.ndim == 2 else array
    array = np.load(path, allow_pickle=False)
    return array.transpose(1, 2, 0) if layout == "CHW" else array


def file_problem(path: str | Path, data, *, header_only: bool = False) -> str | None:
    """:func:`array_problem` or :func:`tiff_problem` of ``path`` against a ``DataConfig``."""
    if data.format == "tiff":
        return tiff_problem(path, dtype=data.dtype, channels=data.channels,
                            max_pixels=data.max_pixels, header_only=header_only)
    return array_problem(path, dtype=data.dtype, channels=data.channels, layout=data.layout,
                         max_pixels=data.max_pixels, header_only=header_only)


def array_problem(path: str | Path, *, dtype: str, channels: int, layout: str,
                  max_pixels: int, header_only: bool = False) -> str | None:
    """Why ``path`` is not a usable array of the declared kind, or None.

    Checked: the NumPy magic and a version-1.0 header (what DALI decodes), 3 dimensions,
    ``channels`` on the channel axis of ``layout``, ``dtype`` exactly, the data present in
    full, at most ``max_pixels`` pixels, and for float32 (unless ``header_only``: what the
    loader checks before every run) only finite values.
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
    if dtype == "float32" and not header_only:
        problem = _finite_problem(np.load(path, mmap_mode="r", allow_pickle=False))
        if problem:
            return problem
    del fortran  # DALI's decoder reads Fortran order too
    return None


def _finite_problem(values) -> str | None:
    import numpy as np

    finite = np.isfinite(values)
    if finite.all():
        return None
    nan = int(np.isnan(values).sum())
    inf = int(values.size - finite.sum()) - nan
    return (f"float32 array holds {nan} NaN and {inf} infinite values; expected finite values "
            "only (they would poison every statistic)")


def tiff_problem(path: str | Path, *, dtype: str, channels: int, max_pixels: int,
                 header_only: bool = False) -> str | None:
    """Why ``path`` is not a TIFF that DALI 2.4 decodes exactly as ``channels`` samples of
    ``dtype``, or None (tags read with tifffile; float32 values decoded and checked finite
    unless ``header_only``).

    Measured on DALI 2.4.0's CPU decoder (``output_type=ANY_DATA``, ``dtype`` given): 1, 3,
    4 and 8 interleaved samples of uint8, uint16 and float32, uncompressed, deflate (with and
    without predictor), tiled or big-endian, decode bit-exactly. Planar TIFFs
    (PlanarConfiguration 2) do not: 3 uint16 or 4 samples come out wrong without an error, 8
    samples fail. A file of another sample type would be rescaled silently.
    """
    try:
        import tifffile
    except ImportError as err:  # pragma: no cover - depends on the environment
        from dalinorm.errors import MissingDependencyError

        raise MissingDependencyError("tifffile", "data.format: tiff") from err
    import numpy as np

    try:
        size = Path(path).stat().st_size
        if size == 0:
            return "empty file (0 bytes)"
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            planar = int(page.planarconfig)
            samples = int(page.samplesperpixel)
            found = np.dtype(page.dtype) if page.dtype is not None else None
            height, width = int(page.imagelength), int(page.imagewidth)
            end = max((o + c for o, c in zip(page.dataoffsets, page.databytecounts)), default=0)
            values = page.asarray() if (dtype == "float32" and not header_only
                                        and found == np.float32) else None
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    except Exception as err:  # tifffile raises TiffFileError, ValueError, ... on junk
        return f"not a readable TIFF: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    if pages > 1:
        return f"{pages}-page TIFF; DALI decodes the first page only: store one image per file"
    if planar == 2 and samples > 1:
        return (f"planar TIFF ({samples} samples stored plane by plane): DALI 2.4 decodes it "
                "wrongly or not at all; rewrite it interleaved (tifffile.imwrite(..., "
                "planarconfig='contig'))")
    if found is None or found.str.lstrip("<>=|") != np.dtype(dtype).str.lstrip("<>=|"):
        return (f"{found} samples, expected {dtype} (data.dtype); DALI would rescale them "
                "silently")
    if samples != channels:
        return f"{samples} samples per pixel, expected {channels} (data.channels)"
    if height * width > max_pixels:
        return (f"too large: {width}×{height} = {height * width:,} pixels > data.max_pixels "
                f"({max_pixels:,})")
    if end > size:
        return f"truncated: {size} bytes, its strips or tiles end at byte {end}"
    return _finite_problem(values) if values is not None else None
