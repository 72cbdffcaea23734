"""The stats file: YAML, versioned, human-readable, written atomically, read back exactly.

Floats are written with ``repr`` precision, so they read back bit-identical. Next to the
file, ``<name>.files.txt`` lists the relative path and size of every image the statistics
came from; its sha256 is the ``fingerprint``, which the loader compares with the current
training split before it applies the statistics (the leak guard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dalinorm.atomic import write_atomically
from dalinorm.data.listing import fingerprint_of
from dalinorm.errors import DalinormError, UsageError
from dalinorm.pipelines.kinds import full_scale_of


__all__ = [
    "FORMAT",
    "VERSION",
    "DatasetStats",
    "percentile_key",
    "StatsFileError",
    "read_stats_file",
    "write_stats_file",
]

FORMAT = "dalinorm-stats"
VERSION = 1
CHANNEL_NAMES = ("R", "G", "B")


def channel_names(channels: int) -> tuple[str, ...]:
    """Names of the channels in the file and in ``dalinorm stats``' table: R, G, B for RGB,
    L for grayscale (PIL's mode name), c0, c1, ... otherwise."""
    if channels == 3:
        return CHANNEL_NAMES
    if channels == 1:
        return ("L",)
    return tuple(f"c{i}" for i in range(channels))


def percentile_key(percent: float) -> str:
    """The stats file's key of a percentile: ``p0.5``, ``p1``, ``p99.5``."""
    return f"p{float(percent):g}"


class StatsFileError(DalinormError, ValueError):
    """A stats file is missing, corrupt, of another version, or does not fit the data."""


@dataclass(frozen=True)
class DatasetStats:
    """Normalization statistics of one split. mean/std are on the [0, 1] scale."""

    mean: tuple[float, ...]  # one per channel
    std: tuple[float, ...]
    global_mean: float
    global_std: float
    num_images: int
    num_pixels: int  # per channel
    split: str
    fingerprint: str
    resolution: str = "native"
    weighting: str = "pixel"
    exif: str = "ignore"
    decoder_device: str = "cpu"
    dali_version: str = ""
    created: str = ""
    sums: dict[str, Any] = field(default_factory=dict)  # exact integers: pixels, sum, sum_squares
    min: tuple[int, int, int] | None = None
    max: tuple[int, int, int] | None = None
    histogram: tuple[tuple[int, ...], ...] | None = None  # [3][256] pixel counts
    skipped_files: int = 0
    # per channel, in 0-255 levels like min/max, keyed "p0.5", "p1", ... (percentile_key):
    # the smallest level with at least p% of the channel's pixels at or below it (numpy's
    # "inverted_cdf"; stats.moments.histogram_percentile), from the histogram; None without one
    percentiles: dict[str, tuple[int, ...]] | None = None
    # the sample type the statistics were taken of (data.dtype, data.channels, bits per
    # sample); files written before these existed are 8-bit RGB
    dtype: str = "uint8"
    channels: int = 3
    bit_depth: int = 8
    # stats.background: the level per channel whose pixels (equal in every channel) were left
    # out (foreground statistics), None for all pixels; images that were all background
    background: tuple[int, ...] | None = None
    background_images: int = 0
    # the file list the fingerprint covers, written next to the stats file (not a YAML key)
    file_list: str = field(default="", repr=False, compare=False)

    def to_yaml_tree(self) -> dict[str, Any]:
        tree: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        top = full_scale_of(self.dtype)
        unit = f"_{int(top)}" if top != 1.0 else "_levels"
        tree.update(
            split=self.split,
            sample={"dtype": self.dtype, "channels": self.channels, "bit_depth": self.bit_depth},
            mean=list(self.mean),
            std=list(self.std),
            global_mean=self.global_mean,
            global_std=self.global_std,
            **{f"mean{unit}": [m * top for m in self.mean],
               f"std{unit}": [s * top for s in self.std],
               f"global_mean{unit}": self.global_mean * top,
               f"global_std{unit}": self.global_std * top},
            num_images=self.num_images,
            num_pixels=self.num_pixels,
            skipped_files=self.skipped_files,
            background_images=self.background_images,
            min=list(self.min) if self.min is not None else None,
            max=list(self.max) if self.max is not None else None,
            options={"resolution": self.resolution, "weighting": self.weighting, "exif": self.exif,
                     "background": list(self.background) if self.background is not None else None},
            decoder={"device": self.decoder_device, "dali_version": self.dali_version},
            fingerprint=self.fingerprint,
            created=self.created,
            sums=self.sums,
            histogram=(
                {name: _pack_row(row) for name, row in zip(channel_names(self.channels), self.histogram)}
                if self.histogram is not None else None
            ),
        )
        if self.percentiles is not None:  # optional in version 1: absent from older files
            tree["percentiles"] = {key: list(v) for key, v in self.percentiles.items()}
        return tree


# ---------------------------------------------------------------------- writing
def _file_list_path(path: Path) -> Path:
    return path.with_name(path.name + ".files.txt")


def write_stats_file(path: Path, stats: DatasetStats) -> None:
    """Write the file list, then the stats file, each atomically."""
    path = Path(path)
    if fingerprint_of(stats.file_list) != stats.fingerprint:
        raise UsageError("stats", "its file_list does not match its fingerprint; write the "
                         "DatasetStats that compute_stats returned, unchanged")
    write_atomically(_file_list_path(path), stats.file_list.encode("utf-8", "surrogateescape"))
    text = (
        "# Normalization statistics written by `dalinorm stats`. mean/std are on the [0, 1]\n"
        "# scale (x/255 for uint8, x/65535 for uint16: see sample); *_255 (*_65535) give the\n"
        "# same in levels, for reading. min, max and percentiles are per-channel levels\n"
        "# (0-255 or 0-65535) from the histogram; percentile pX is the\n"
        "# smallest level with at least X% of the channel's pixels at or below it\n"
        "# (numpy.percentile(pixels, X, method='inverted_cdf')).\n"
        + yaml.safe_dump(stats.to_yaml_tree(), sort_keys=False, width=120, default_flow_style=None)
    )
    write_atomically(path, text.encode("utf-8"))


# A 16-bit histogram row is 65,536 counts: as a YAML list, 8 channels made a 1.6 MB file that
# took 38 s to read (pure-Python YAML; 7 s with libyaml), once per loader. Rows longer than 256
# bins are written as one string instead: this prefix, then the counts as little-endian int64,
# zlib-compressed, base64. 256-bin rows stay readable lists, as in every earlier file.
_PACKED_ROW = "zlib+base64 int64le:"


def _pack_row(row) -> list[int] | str:
    if len(row) <= 256:
        return list(row)
    import base64
    import zlib

    import numpy as np

    data = np.asarray(row, dtype="<i8").tobytes()
    return _PACKED_ROW + base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _unpack_row(value, path: Path) -> tuple[int, ...]:
    if not isinstance(value, str):
        return tuple(value)
    import base64
    import binascii
    import zlib

    import numpy as np

    if not value.startswith(_PACKED_ROW):
        raise StatsFileError(f"{path}: a histogram row is a string that does not start with "
                             f"{_PACKED_ROW!r}; not a dalinorm stats file")
    try:
        data = zlib.decompress(base64.b64decode(value[len(_PACKED_ROW):], validate=True))
    except (binascii.Error, zlib.error) as err:
        raise StatsFileError(f"{path}: a packed histogram row cannot be decoded ({err})") from None
    return tuple(np.frombuffer(data, dtype="<i8").tolist())


# ---------------------------------------------------------------------- reading
def _field(tree: dict, key: str, kind: type | tuple, path: Path, *, length: int | None = None):
    if key not in tree:
        raise StatsFileError(f"{path}: key '{key}' is missing; not a complete dalinorm stats file")
    value = tree[key]
    if length is not None:
        if not isinstance(value, list) or len(value) != length:
            got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
            raise StatsFileError(f"{path}: '{key}' must be a list of {length} values "
                                 f"(one per channel), got {got}")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, kind):
                raise StatsFileError(f"{path}: '{key}' must hold numbers, got {v!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, kind):
        raise StatsFileError(f"{path}: '{key}' must be {getattr(kind, '__name__', 'a number')}, "
                             f"got {value!r}")
    return value


def read_stats_file(path: Path) -> DatasetStats:
    """Read and check a stats file; :class:`StatsFileError` names the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StatsFileError(f"{path}: stats file not found (write one with `dalinorm stats`)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StatsFileError(f"{path}: cannot read stats file: {err}") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StatsFileError(f"{path}: not valid YAML ({str(err).splitlines()[0]}); "
                             "the file is corrupt") from None
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise StatsFileError(f"{path}: not a dalinorm stats file (expected 'format: {FORMAT}')")
    if tree.get("version") != VERSION:
        raise StatsFileError(f"{path}: stats file format version {tree.get('version')!r} is not "
                             f"supported (this dalinorm reads version {VERSION}); recompute it")
    number = (int, float)
    sample = tree.get("sample") or {"dtype": "uint8", "channels": 3, "bit_depth": 8}
    if not isinstance(sample, dict):
        raise StatsFileError(f"{path}: 'sample' must be a mapping like {{dtype: uint16, channels: 1, "
                             f"bit_depth: 16}}, got {sample!r}")
    sample_dtype = str(sample.get("dtype", "uint8"))
    channels = _field(sample, "channels", int, path) if "channels" in sample else 3
    bit_depth = _field(sample, "bit_depth", int, path) if "bit_depth" in sample else 8
    if channels < 1:
        raise StatsFileError(f"{path}: 'sample.channels' must be >= 1, got {channels}")
    mean = _field(tree, "mean", number, path, length=channels)
    std = _field(tree, "std", number, path, length=channels)
    if any(s <= 0 for s in std):
        raise StatsFileError(f"{path}: 'std' must be > 0, got {std}")
    global_std = float(_field(tree, "global_std", number, path))
    if global_std <= 0:
        raise StatsFileError(f"{path}: 'global_std' must be > 0, got {global_std}")
    options = tree.get("options") or {}
    decoder = tree.get("decoder") or {}
    histogram = tree.get("histogram")
    return DatasetStats(
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        global_mean=float(_field(tree, "global_mean", number, path)),
        global_std=global_std,
        num_images=_field(tree, "num_images", int, path),
        num_pixels=_field(tree, "num_pixels", int, path),
        split=str(_field(tree, "split", str, path)),
        fingerprint=str(_field(tree, "fingerprint", str, path)),
        resolution=str(options.get("resolution", "native")),
        weighting=str(options.get("weighting", "pixel")),
        exif=str(options.get("exif", "ignore")),
        decoder_device=str(decoder.get("device", "")),
        dali_version=str(decoder.get("dali_version", "")),
        created=str(tree.get("created", "")),
        sums=dict(tree.get("sums") or {}),
        min=tuple(tree["min"]) if tree.get("min") is not None else None,
        max=tuple(tree["max"]) if tree.get("max") is not None else None,
        histogram=(tuple(_unpack_row(histogram[c], path) for c in channel_names(channels))
                   if histogram else None),
        skipped_files=int(tree.get("skipped_files", 0) or 0),
        background=_background(options, path, channels),
        background_images=int(tree.get("background_images", 0) or 0),
        percentiles=_percentiles(tree, path, channels),
        dtype=sample_dtype,
        channels=channels,
        bit_depth=bit_depth,
    )


def _background(options: dict, path: Path, channels: int) -> tuple[int, ...] | None:
    """``options.background``: null (every pixel counted; also files written before it
    existed) or one integer level per channel."""
    value = options.get("background")
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == channels
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise StatsFileError(f"{path}: 'options.background' must be null or {channels} integer "
                             f"levels, got {value!r}")
    return tuple(value)


def _percentiles(tree: dict, path: Path, channels: int = 3) -> dict[str, tuple[int, ...]] | None:
    """The optional ``percentiles`` mapping (files written before it existed have none)."""
    value = tree.get("percentiles")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StatsFileError(f"{path}: 'percentiles' must be a mapping like p50: [R, G, B], "
                             f"got {type(value).__name__}")
    result = {}
    for key, levels in value.items():
        ok = (isinstance(levels, list) and len(levels) == channels
              and all(isinstance(v, int) and not isinstance(v, bool) for v in levels))
        if not (isinstance(key, str) and key.startswith("p") and ok):
            raise StatsFileError(f"{path}: 'percentiles' entry {key!r} must be pX: [R, G, B] "
                                 f"with integer levels, got {levels!r}")
        result[key] = tuple(levels)
    return result


def _parse_file_list(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        size, _, rel = line.partition("\t")
        entries[rel] = size
    return entries


def describe_mismatch(path: Path, current_list: str) -> str:
    """How the training files differ from those the stats were computed on."""
    list_path = _file_list_path(Path(path))
    now = _parse_file_list(current_list)
    try:
        then = _parse_file_list(list_path.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return f"{len(now)} training files now; their list at the time ({list_path.name}) is missing"
    added = len(now.keys() - then.keys())
    removed = len(then.keys() - now.keys())
    changed = sum(1 for k in now.keys() & then.keys() if now[k] != then[k])
    return f"{added} files added, {removed} removed, {changed} changed in size since"
