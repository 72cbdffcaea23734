"""The YAML schema of dalinorm as frozen dataclasses, and its strict loader.

Every value a user writes goes through :func:`load_config` (or :func:`config_from_dict`):
unknown keys are errors with a did-you-mean, duplicate keys are errors with their line,
types are checked exactly (a bool is not an int), ranges are checked, and ``--set a.b=v``
overrides go through the same path. Errors are :class:`ConfigError` with the dotted key path.

Mean and std are on the [0, 1] scale everywhere in the config; they are converted to the
0–255 scale in exactly one place, where they are handed to DALI.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from dalinorm.errors import (
    ConfigError,
    DalinormError,
    MissingDependencyError,
    UsageError,
)

__all__ = [
    "AUTO_AUGMENT_POLICIES",
    "AutoAugmentConfig",
    "ColorJitterConfig",
    "Config",
    "ConfigError",
    "DalinormError",
    "DataConfig",
    "EvalConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "LoaderConfig",
    "MissingDependencyError",
    "NormalizeConfig",
    "OutputConfig",
    "RandomEraseConfig",
    "SizeSchedule",
    "StatsConfig",
    "TrainConfig",
    "UsageError",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]

# torchvision's ImageNet statistics, on the [0, 1] scale.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class _FieldError(Exception):
    """Raised by ``__post_init__`` checks; the loader prefixes the section's key path."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(key, message)
        self.key = key
        self.message = message


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise _FieldError(key, message)


# the resize filters train.interpolation and eval.interpolation accept
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic")


def _require_choice(value: str, choices: Sequence[str], key: str, what: str) -> None:
    """``value`` is one of ``choices``, else an error with the choices and a did-you-mean."""
    if value not in choices:
        close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise _FieldError(key, f"must be one of {'|'.join(choices)} ({what}), got {value!r}{hint}")


@dataclass(frozen=True)
class DataConfig:
    """Where the images are: ``root/<train>`` and ``root/<val>``, in the layout ``format`` names."""

    root: Path = Path("data")
    train: str = "train"
    val: str = "val"
    # imagefolder: train/val are folders <split>/<class>/<image>, labels from sorted class names;
    # file_list: train/val are text files of "relative/path label" lines (DALI's format),
    # paths relative to data.root;
    # webdataset: train/val are folders of tar shards written by `dalinorm pack` (images +
    # .cls labels, DALI index files, manifest.json and samples.tsv);
    # numpy: train/val are folders <split>/<class>/<array>.npy (labels as imagefolder), each a
    # 3-D array of data.dtype with data.channels channels, laid out as data.layout;
    # tiff: the same tree of multi-band TIFF files (.tif/.tiff, samples interleaved), read as
    # arrays of any channel count (docs/KINDS.md says which TIFFs DALI 2.4 decodes)
    format: Literal["imagefolder", "file_list", "webdataset", "numpy", "tiff"] = "imagefolder"
    # numpy only: the axis order of every array, HWC (height, width, channels) or CHW
    layout: Literal["HWC", "CHW"] = "HWC"
    # webdataset train only: samples held in the reader's shuffle buffer (per rank; each holds
    # one encoded image). Larger mixes more across shards and costs memory.
    shuffle_buffer: int = 1024
    # EXIF orientation: "ignore" matches torchvision/PIL (which do not rotate), "apply" rotates.
    exif: Literal["ignore", "apply"] = "ignore"
    # What to do with files that cannot be used: "error" names the first one and stops;
    # "skip" reads only the files listed as good in checked_list (written by `dalinorm
    # check-data --write-list`) or, without one, runs those checks once per split and caches
    # the list by the split's fingerprint (data.root/.dalinorm-cache, else ~/.cache/dalinorm).
    on_bad_file: Literal["error", "skip"] = "error"
    checked_list: Path | None = None
    # Images with more pixels than this are reported by check-data (decompression bombs).
    max_pixels: int = 100_000_000
    # Channels each image is decoded to: 3 (RGB; a grayscale file is replicated) or 1
    # (grayscale, yielded as [N, 1, H, W]; an RGB file is converted with PIL's convert("L")
    # rule, L = (19595 R + 38470 G + 7471 B + 2**15) >> 16). Arrays (format numpy) take any >= 1.
    channels: int = 3
    # Sample type of the files: uint8 (8-bit, [0, 1] scale is x / 255), uint16 (16-bit PNG or
    # TIFF read exactly, x / 65535; a file of the other bit depth is an error, never rescaled),
    # float32 (arrays only, data.format numpy).
    dtype: Literal["uint8", "uint16", "float32"] = "uint8"

    def __post_init__(self) -> None:
        _require(self.max_pixels >= 1, "max_pixels", f"must be >= 1, got {self.max_pixels}")
        arrays = self.reads_arrays
        _require(
            self.format == "numpy" or self.layout == "HWC",
            "layout",
            f"is for .npy arrays only (data.format numpy); {self.format} files are decoded "
            f"as height × width × channels, got {self.layout!r}",
        )
        _require(self.channels >= 1, "channels", f"must be >= 1, got {self.channels}")
        _require(
            arrays or self.channels in (1, 3),
            "channels",
            f"must be 1 (grayscale) or 3 (RGB) for {self.format} images, got {self.channels}",
        )
        _require(
            arrays or self.dtype != "float32",
            "dtype",
            f"float32 is only read from arrays (data.format numpy); images are uint8 or uint16, "
            f"got data.format {self.format!r}",
        )
        _require(self.shuffle_buffer >= 1, "shuffle_buffer", f"must be >= 1, got {self.shuffle_buffer}")
        _require(
            not (self.format == "webdataset" and self.on_bad_file == "skip"),
            "on_bad_file",
            "'skip' cannot drop samples inside tar shards; pack only the good files instead "
            "(`dalinorm pack` honours data.on_bad_file: skip with data.checked_list)",
        )
        for name in ("train", "val"):
            value = getattr(self, name)
            _require(bool(value.strip()), name, "must be a non-empty folder name under data.root")
            _require(
                not Path(value).is_absolute() and ".." not in Path(value).parts,
                name,
                f"must be a subfolder of data.root, got {value!r}",
            )
        _require(self.train != self.val, "val", f"must differ from data.train ({self.train!r})")

    @property
    def reads_arrays(self) -> bool:
        """numpy and tiff: files read as arrays of any channel count (pipelines/arrays.py)."""
        return self.format in ("numpy", "tiff")


@dataclass(frozen=True)
class LoaderConfig:
    """Batching, threads and the device the pipeline runs on."""

    batch_size: int = 256
    num_threads: int = 4
    device: Literal["auto", "gpu", "cpu"] = "auto"
    seed: int = 0
    prefetch: int = 2
    drop_last: bool = True
    # pil: resize as PIL/torchvision do: on the CPU Pillow's own fixed-point arithmetic (a
    # numba operator, bit-identical), on the GPU as pil_dali; pil_dali: PIL's two passes with
    # DALI's resize (≈0.002–0.03 uint8 level, edges up to 14); fast: one DALI 2-D resize
    # (≈0.17 level mean). See docs/PARITY.md.
    resize: Literal["pil", "pil_dali", "fast"] = "pil"
    # chroma upsampling of the GPU ("mixed") JPEG decoder: fast is nvJPEG's default (differs
    # from libjpeg by design, DALI#1889); faithful asks it for libjpeg's "fancy" upsampling
    # (DALI's jpeg_fancy_upsampling=True: closer to PIL, slower). No effect on the CPU decoder,
    # which is libjpeg. Measured cost and levels: docs/GPU.md.
    jpeg_upsampling: Literal["fast", "faithful"] = "fast"
    # repeated augmentation (torchvision's --ra-sampler --ra-reps K, DeiT): each train image K
    # times per epoch, each repeat augmented independently, spread over the ranks, in the order
    # of torchvision's RASampler (which keeps floor(n // 256 * 256 / world) images per rank and
    # epoch); 1 is off
    repeated_augment: int = 1

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _require(self.num_threads >= 1, "num_threads", f"must be >= 1, got {self.num_threads}")
        _require(self.prefetch >= 1, "prefetch", f"must be >= 1, got {self.prefetch}")
        _require(self.repeated_augment >= 1, "repeated_augment",
                 f"must be >= 1 (repeats of each image per epoch; 1 is off), got {self.repeated_augment}")
        _require(
            0 <= self.seed < 2**31, "seed", f"must be in [0, 2**31), got {self.seed}"
        )


@dataclass(frozen=True)
class SizeSchedule:
    """Progressive resizing, FFCV's form (``get_resolution`` of its ImageNet example,
    ffcv-imagenet ``train_imagenet.py``; its ResNet-50 configs ramp 160 → 192): the training
    size of 0-based epoch ``e`` is ``min_res`` up to ``start_ramp``, ``max_res`` from
    ``end_ramp`` on, and in between the linear interpolation rounded (half to even) to a
    multiple of ``step`` (FFCV: 32). See :meth:`size_at`."""

    min_res: int = 160  # FFCV's defaults: 160 throughout
    max_res: int = 160
    start_ramp: int = 0
    end_ramp: int = 0
    step: int = 32

    def __post_init__(self) -> None:
        _require(self.min_res >= 1, "min_res", f"must be >= 1, got {self.min_res}")
        _require(self.max_res >= self.min_res, "max_res",
                 f"must be >= min_res ({self.min_res}), got {self.max_res}")
        _require(self.start_ramp >= 0, "start_ramp", f"must be an epoch >= 0, got {self.start_ramp}")
        _require(self.end_ramp >= self.start_ramp, "end_ramp",
                 f"must be >= start_ramp ({self.start_ramp}): the ramp's epochs are out of order, "
                 f"got {self.end_ramp}")
        _require(self.step >= 1, "step", f"must be >= 1 (the sizes are rounded to multiples of it), "
                 f"got {self.step}")

    def size_at(self, epoch: int) -> int:
        """The training size of 0-based ``epoch``, exactly as FFCV's ``get_resolution``:
        ``int(np.round(np.interp(epoch, [start_ramp, end_ramp], [min_res, max_res]) / step)) * step``
        inside the ramp. Python's ``round`` is numpy's (half to even), and the interpolation is
        numpy's arithmetic (slope times offset plus start, in double)."""
        if epoch <= self.start_ramp:
            return self.min_res
        if epoch >= self.end_ramp:
            return self.max_res
        slope = (self.max_res - self.min_res) / (self.end_ramp - self.start_ramp)
        value = slope * (epoch - self.start_ramp) + self.min_res
        return int(round(value / self.step)) * self.step

    def sizes(self) -> tuple[int, ...]:
        """Every size the schedule takes, in order of first use."""
        seen = dict.fromkeys(self.size_at(e) for e in range(self.end_ramp + 1))
        return tuple(seen)

    def describe(self) -> str:
        """The sizes by epoch in words, counting epochs from 1 as ``DaliLoader.epoch`` does
        (FFCV's epoch e is epoch e + 1): ``160 in epochs 1-71, 192 from epoch 72``."""
        runs: list[list[int]] = []  # [size, first epoch, last epoch], 1-based
        for epoch in range(1, self.end_ramp + 2):
            size = self.size_at(epoch - 1)
            if runs and runs[-1][0] == size:
                runs[-1][2] = epoch
            else:
                runs.append([size, epoch, epoch])
        parts = [f"{size} in epoch{'s' if a != b else ''} {a}{'-' + str(b) if a != b else ''}"
                 for size, a, b in runs[:-1]]
        parts.append(f"{runs[-1][0]} from epoch {runs[-1][1]}")
        return ", ".join(parts)


# the automatic augmentation policies train.auto_augment accepts (torchvision's names in
# pipelines/augment.py's docstring)
AUTO_AUGMENT_POLICIES: tuple[str, ...] = (
    "none", "trivial_augment_wide", "rand_augment", "auto_augment_imagenet")


@dataclass(frozen=True)
class AutoAugmentConfig:
    """``train.auto_augment``: torchvision's TrivialAugmentWide(num_magnitude_bins),
    RandAugment(num_ops, magnitude, num_magnitude_bins) or AutoAugment(IMAGENET), after the
    crop and flip. ``train.auto_augment: rand_augment`` is short for ``{policy: rand_augment}``;
    a parameter the policy does not take is an error, one it takes defaults to torchvision's."""

    _SHORTHAND: typing.ClassVar[str] = "policy"

    policy: str = "none"
    num_ops: int | None = None  # rand_augment: operations per image (torchvision: 2)
    magnitude: int | None = None  # rand_augment: the bin, 0..num_magnitude_bins-1 (torchvision: 9)
    num_magnitude_bins: int | None = None  # trivial_augment_wide, rand_augment (torchvision: 31)

    def __post_init__(self) -> None:
        _require_choice(self.policy, AUTO_AUGMENT_POLICIES, "policy", "the automatic augmentation")
        takes = {"trivial_augment_wide": ("num_magnitude_bins",),
                 "rand_augment": ("num_ops", "magnitude", "num_magnitude_bins")}.get(self.policy, ())
        for name in ("num_ops", "magnitude", "num_magnitude_bins"):
            _require(getattr(self, name) is None or name in takes, name,
                     f"is not a parameter of {self.policy!r} (it takes: {', '.join(takes) or 'none'})")
        defaults = {"num_ops": 2, "magnitude": 9, "num_magnitude_bins": 31}
        for name in takes:
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[name])
        if self.num_magnitude_bins is not None:
            _require(self.num_magnitude_bins >= 2, "num_magnitude_bins",
                     f"must be >= 2, got {self.num_magnitude_bins}")
        if self.num_ops is not None:
            _require(self.num_ops >= 1, "num_ops", f"must be >= 1, got {self.num_ops}")
        if self.magnitude is not None:
            _require(0 <= self.magnitude < self.num_magnitude_bins, "magnitude",
                     f"must be a bin in [0, {self.num_magnitude_bins - 1}] (num_magnitude_bins "
                     f"{self.num_magnitude_bins}), got {self.magnitude}")


@dataclass(frozen=True)
class ColorJitterConfig:
    """``train.color_jitter``: torchvision's ColorJitter(brightness, contrast, saturation, hue):
    factors uniform in [max(0, 1 − v), 1 + v] (hue: a shift in [−hue, hue] of a turn), the four
    in a random order per image; 0 leaves an operation out."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            _require(0 <= v and math.isfinite(v), name, f"must be a finite number >= 0, got {v}")
        _require(0 <= self.hue <= 0.5, "hue", f"must be in [0, 0.5] (a fraction of a turn), got {self.hue}")


@dataclass(frozen=True)
class RandomEraseConfig:
    """``train.random_erase``: torchvision's RandomErasing(p, scale, ratio, value) after
    normalization; ``train.random_erase: 0.1`` is short for ``{probability: 0.1}`` (torchvision's
    ``--random-erase 0.1``). ``value``: the fill in normalized units (0 = the mean colour),
    one value or one per channel."""

    _SHORTHAND: typing.ClassVar[str] = "probability"

    probability: float = 0.0
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        _require(0 <= self.probability <= 1, "probability",
                 f"must be a probability in [0, 1], got {self.probability}")
        lo, hi = self.scale
        _require(0 < lo <= hi <= 1, "scale",
                 f"must be [min, max] with 0 < min <= max <= 1 (of the image area), got {list(self.scale)}")
        lo, hi = self.ratio
        _require(0 < lo <= hi, "ratio", f"must be [min, max] with 0 < min <= max, got {list(self.ratio)}")
        _require(len(self.value) in (1, 3), "value",
                 f"must have 1 or 3 values (per channel), got {len(self.value)}")
        _require(all(math.isfinite(v) for v in self.value), "value", f"must be finite, got {list(self.value)}")


@dataclass(frozen=True)
class TrainConfig:
    """torchvision's RandomResizedCrop(size, scale, ratio, interpolation) + RandomHorizontalFlip(hflip)."""

    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    # progressive resizing (FFCV's): the size per epoch; train.size is then not used for the
    # training crops (SizeSchedule)
    size_schedule: SizeSchedule | None = None
    # the resize filter of RandomResizedCrop: bilinear (torchvision's default) or bicubic (timm's
    # recipes, "ResNet strikes back"): PIL's filter with a = -0.5, exact on the CPU with
    # loader.resize: pil; DALI's cubic elsewhere (measured, docs/PARITY.md)
    interpolation: str = "bilinear"
    # per-sample augmentations (pipelines/augment.py): jitter and policy on uint8 after the flip,
    # erasing after normalization, as torchvision's classification references order them
    auto_augment: AutoAugmentConfig = field(default_factory=AutoAugmentConfig)
    color_jitter: ColorJitterConfig = field(default_factory=ColorJitterConfig)
    random_erase: RandomEraseConfig = field(default_factory=RandomEraseConfig)

    def __post_init__(self) -> None:
        _require(self.size >= 1, "size", f"must be >= 1, got {self.size}")
        lo, hi = self.scale
        _require(
            0 < lo <= hi <= 1, "scale", f"must be [min, max] with 0 < min <= max <= 1, got {list(self.scale)}"
        )
        lo, hi = self.ratio
        _require(0 < lo <= hi, "ratio", f"must be [min, max] with 0 < min <= max, got {list(self.ratio)}")
        _require(0 <= self.hflip <= 1, "hflip", f"must be a probability in [0, 1], got {self.hflip}")
        _require_choice(self.interpolation, INTERPOLATIONS, "interpolation",
                        "RandomResizedCrop's resize filter")


@dataclass(frozen=True)
class EvalConfig:
    """torchvision's Resize(resize_shorter, interpolation) + CenterCrop(crop)."""

    resize_shorter: int = 256
    crop: int = 224
    # the filter of Resize: bilinear (torchvision's default) or bicubic, as train.interpolation
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        _require(self.resize_shorter >= 1, "resize_shorter", f"must be >= 1, got {self.resize_shorter}")
        _require(self.crop >= 1, "crop", f"must be >= 1, got {self.crop}")
        _require_choice(self.interpolation, INTERPOLATIONS, "interpolation", "Resize's filter")
        _require(
            self.crop <= self.resize_shorter,
            "crop",
            f"must be <= eval.resize_shorter ({self.resize_shorter}) so the crop lies inside "
            f"the resized image, got {self.crop}",
        )


@dataclass(frozen=True)
class NormalizeConfig:
    """Which mean/std ``crop_mirror_normalize`` applies, all on the [0, 1] scale.

    ``source``: ``imagenet`` (torchvision's constants), ``stats`` (a file written by
    ``dalinorm stats``), ``values`` (``mean``/``std`` given here) or ``none`` (scale to [0, 1]
    only). ``mode``: ``channel`` (one mean/std per channel), ``global`` (one for all), or
    ``per_image`` (each output image standardized by its own mean and std over all its pixels
    and channels, std floored at 1/sqrt(values) on the [0, 1] scale as TensorFlow's
    ``per_image_standardization`` does; no dataset statistics, so ``source`` must be ``none``
    or left at its default), or ``percentile`` (MONAI's ``ScaleIntensityRangePercentiles``:
    each channel clipped to its [``percentiles[0]``, ``percentiles[1]``] percentiles of the
    training split, from the stats file's histogram, then ``then: scale`` maps the clipped
    range to [0, 1] or ``then: standardize`` subtracts the clipped pixels' mean and divides by
    their std; ``source`` must be ``stats``).
    """

    source: Literal["imagenet", "stats", "values", "none"] = "imagenet"
    stats_file: Path | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    mode: Literal["channel", "global", "per_image", "percentile"] = "channel"
    on_mismatch: Literal["error", "warn"] = "error"
    # mode percentile only: [low, high] percents (numpy's inverted_cdf, 0 <= low < high <= 100),
    # default [0.5, 99.5]; and what follows the clip: scale (to [0, 1]) or standardize
    percentiles: tuple[float, float] | None = None
    then: Literal["scale", "standardize"] | None = None
    # with stats.background: output pixels equal to the background in every channel keep
    # their value (on the [0, 1] scale: 0 for a black background) instead of being
    # normalized, as MONAI's NormalizeIntensity(nonzero=True) leaves zeros at zero
    keep_background: bool = False

    def __post_init__(self) -> None:
        self._check_percentile()
        # per_image takes no dataset statistics: a stats file or given mean/std would be ignored
        _require(
            self.mode != "per_image" or self.source in ("none", "imagenet"),
            "source",
            f"must be 'none' with normalize.mode 'per_image' (each image is standardized by its "
            f"own mean and std; no dataset statistics are used), got {self.source!r}",
        )
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                _require(
                    all(math.isfinite(v) for v in value), name, f"must be finite, got {list(value)}"
                )
        if self.std is not None:
            _require(all(v > 0 for v in self.std), "std", f"must be > 0, got {list(self.std)}")
        if self.source == "values":
            _require(self.mean is not None, "mean", "is required when normalize.source is 'values'")
            _require(self.std is not None, "std", "is required when normalize.source is 'values'")
        else:
            for name in ("mean", "std"):
                _require(
                    getattr(self, name) is None,
                    name,
                    f"is only used with normalize.source 'values', but source is {self.source!r}",
                )
        if self.source == "stats":
            _require(
                self.stats_file is not None,
                "stats_file",
                "is required when normalize.source is 'stats' (write one with `dalinorm stats`)",
            )

    def _check_percentile(self) -> None:
        if self.mode != "percentile":
            for name in ("percentiles", "then"):
                _require(getattr(self, name) is None, name,
                         f"is only used with normalize.mode 'percentile', but mode is {self.mode!r}")
            return
        _require(self.source == "stats", "source",
                 "must be 'stats' with normalize.mode 'percentile' (the clip bounds are the "
                 f"training split's percentiles, read from a stats file), got {self.source!r}")
        # the defaults are filled in, so `dalinorm validate` prints what will be applied
        if self.percentiles is None:
            object.__setattr__(self, "percentiles", (0.5, 99.5))
        if self.then is None:
            object.__setattr__(self, "then", "scale")
        low, high = self.percentiles
        _require(0 <= low < high <= 100, "percentiles",
                 f"must be [low, high] percents with 0 <= low < high <= 100, got {[low, high]}")


@dataclass(frozen=True)
class OutputConfig:
    """dtype and layout of the image tensors handed to PyTorch."""

    dtype: Literal["float32", "float16"] = "float32"
    # memory format of the [N, C, H, W]-shaped tensors: NCHW is contiguous, NHWC is
    # torch.channels_last (the shape stays [N, C, H, W]; only the strides differ)
    layout: Literal["NCHW", "NHWC"] = "NCHW"


@dataclass(frozen=True)
class StatsConfig:
    """Options of the statistics pass (``dalinorm stats``)."""

    # native: raw decoded pixels; eval: after the eval resize + center crop the network sees.
    resolution: Literal["native", "eval"] = "native"
    # pixel: every pixel weighs the same; image: every image weighs the same.
    weighting: Literal["pixel", "image"] = "pixel"
    # how images are reduced in the graph: histogram (numba, CPU), sums (stock operators,
    # any device), auto (histogram on the CPU when numba is installed, else sums)
    reducer: Literal["auto", "histogram", "sums"] = "auto"
    # foreground statistics (MONAI's NormalizeIntensity(nonzero=True)): a pixel whose every
    # channel equals this value is background and left out of the counts, sums, histograms
    # and percentiles. In sample levels (0-255 for uint8, 0-65535 for uint16), one value for
    # all channels or one per channel; null (the default) counts every pixel.
    background: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.background is None:
            return
        levels = (self.background,) if isinstance(self.background, int) else self.background
        _require(all(v >= 0 for v in levels), "background",
                 f"must be sample levels >= 0, got {self.background!r}")

    def background_levels(self, channels: int) -> tuple[int, ...] | None:
        """The background value per channel (``channels`` of them), or None."""
        if self.background is None:
            return None
        levels = (self.background,) if isinstance(self.background, int) else tuple(self.background)
        # one level, as a number or a one-element list, holds for every channel
        return levels * channels if len(levels) == 1 else levels


@dataclass(frozen=True)
class Config:
    """A whole, validated dalinorm configuration."""

    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    # The file this config was read from (None when built from a dict); not a YAML key.
    source_path: Path | None = field(default=None, compare=False, metadata={"yaml": False})

    def __post_init__(self) -> None:
        # Checks that span sections: mean/std must fit the decoded channel count. Raised as
        # ConfigError here (not _FieldError) so dataclasses.replace() outside the loader names
        # the key too.
        channels = self.data.channels
        norm = self.normalize
        for name in ("mean", "std"):
            value = getattr(norm, name)
            if value is not None and len(value) not in (1, channels):
                raise ConfigError(
                    f"normalize.{name}",
                    f"must have 1 or data.channels ({channels}) values, got {len(value)}",
                )
        if norm.source == "imagenet" and norm.mode != "per_image" and channels != 3:
            raise ConfigError(
                "normalize.source",
                f"'imagenet' statistics are for 3 RGB channels, but data.channels is {channels}; "
                f"use source stats (`dalinorm stats`), values or none",
            )
        if norm.mode == "percentile" and self.data.dtype == "float32":
            raise ConfigError(
                "normalize.mode",
                "'percentile' needs exact percentiles, which float32 arrays do not have (no "
                "finite set of levels to count; docs/KINDS.md); use channel, global or per_image",
            )
        train = self.train
        jitter = train.color_jitter
        policy_keys = []
        if train.auto_augment.policy != "none":
            policy_keys.append("train.auto_augment")
        if any(v > 0 for v in (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)):
            policy_keys.append("train.color_jitter")
        if self.data.reads_arrays:
            # the array graphs are RandomResizedCrop, flip, resize, center crop, normalize
            unsupported = list(policy_keys)
            if train.random_erase.probability > 0:
                unsupported.append("train.random_erase")
            if train.size_schedule is not None:
                unsupported.append("train.size_schedule")
            if self.stats.background is not None:
                unsupported.append("stats.background")
            if norm.keep_background:
                unsupported.append("normalize.keep_background")
            unsupported += [f"{key}.interpolation" for key, value in
                            (("train", train.interpolation), ("eval", self.eval.interpolation))
                            if value != "bilinear"]
            if unsupported:
                raise ConfigError(unsupported[0], f"is not available with data.format "
                                  f"{self.data.format!r} (the array graphs crop, flip, resize "
                                  f"bilinearly and normalize only); remove it")
        erase_value = train.random_erase.value
        if train.random_erase.probability > 0 and len(erase_value) not in (1, channels):
            raise ConfigError("train.random_erase.value", f"must have 1 or data.channels "
                              f"({channels}) values, got {len(erase_value)}")
        if policy_keys and not self.data.reads_arrays and (channels != 3 or self.data.dtype != "uint8"):
            raise ConfigError(policy_keys[0], f"works on 8-bit RGB images (torchvision's PIL "
                              f"operations), but data is {channels}-channel {self.data.dtype}; "
                              f"remove it")
        background = self.stats.background
        if norm.keep_background and background is None:
            raise ConfigError("normalize.keep_background", "needs stats.background (the value "
                              "that marks background pixels), which is null")
        if norm.keep_background and norm.mode == "per_image":
            raise ConfigError("normalize.keep_background", "is not available with normalize.mode "
                              "'per_image' (each image's moments are over all its pixels)")
        if background is not None:
            levels = (background,) if isinstance(background, int) else background
            if len(levels) not in (1, channels):
                raise ConfigError("stats.background", f"must have 1 or data.channels ({channels}) "
                                  f"values, got {len(levels)}")
            if self.data.dtype == "float32":
                raise ConfigError("stats.background", "applies to integer samples (uint8, "
                                  "uint16); float32 arrays have no exact background level")
            top = 255 if self.data.dtype == "uint8" else 65535
            if max(levels) > top:
                raise ConfigError("stats.background", f"must be levels <= {top} for data.dtype "
                                  f"{self.data.dtype}, got {background!r}")

    def split_dir(self, split: str) -> Path:
        """The folder of ``split`` (``"train"``, ``"val"`` or a folder name under data.root)."""
        name = {"train": self.data.train, "val": self.data.val}.get(split, split)
        return self.data.root / name

    def is_training_split(self, split: str) -> bool:
        return split in ("train", self.data.train)

    def split_key(self, split: str) -> str:
        """The config key that names ``split``, for messages: ``data.train``, ``data.val``, or
        ``data.root`` for a folder name under it."""
        return f"data.{split}" if split in ("train", "val") else "data.root"


# --------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                str(key), f"duplicate key at line {line} (first defined at line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def _type_name(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def _convert(value: Any, hint: Any, key: str, base_dir: Path | None) -> Any:
    """Check ``value`` against the annotation ``hint`` exactly and return the typed value."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        # int | tuple[int, ...]: a YAML scalar takes the scalar branch, a list the list one
        if len(inner) > 1 and isinstance(value, (list, tuple)):
            inner = [a for a in inner if typing.get_origin(a) is tuple] or inner
        return _convert(value, inner[0], key, base_dir)
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            choices = "|".join(str(a) for a in args)
            raise ConfigError(key, f"must be one of {choices}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {_type_name(value)} {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"must be an integer, got {_type_name(value)} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"must be a number, got {_type_name(value)} {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {_type_name(value)} {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"must be a path (string), got {_type_name(value)} {value!r}")
        path = Path(value)
        # Paths are taken literally: no ~ or $VAR expansion, never handed to a shell.
        if not path.is_absolute() and base_dir is not None:
            path = Path(os.path.normpath(base_dir / path))
        return path
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"must be a list, got {_type_name(value)} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise ConfigError(key, "must be a non-empty list")
            return tuple(_convert(v, args[0], f"{key}[{i}]", base_dir) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(key, f"must be a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]", base_dir) for i, (v, a) in enumerate(zip(value, args)))
    raise TypeError(f"unsupported annotation {hint!r} for {key}")  # a bug in this module


def _yaml_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _build(cls: type, raw: Any, prefix: str, base_dir: Path | None) -> Any:
    if raw is None:
        raw = {}
    shorthand = getattr(cls, "_SHORTHAND", None)
    if shorthand is not None and not isinstance(raw, Mapping):
        raw = {shorthand: raw}  # train.random_erase: 0.1 is {probability: 0.1}
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix or "config", f"must be a mapping, got {_type_name(raw)} {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in _yaml_fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(path, f"unknown key{hint}")
        hint_type = hints[key]
        optional = [a for a in typing.get_args(hint_type) if a is not type(None)]
        if value is not None and len(optional) == 1 and dataclasses.is_dataclass(optional[0]):
            hint_type = optional[0]  # an optional section (train.size_schedule)
        if dataclasses.is_dataclass(hint_type):
            kwargs[key] = _build(hint_type, value, path, base_dir)
        else:
            kwargs[key] = _convert(value, hint_type, path, base_dir)
    try:
        return cls(**kwargs)
    except _FieldError as err:
        path = f"{prefix}.{err.key}" if prefix else err.key
        raise ConfigError(path, err.message) from None


def _apply_override(tree: dict, override: str) -> None:
    if "=" not in override:
        raise ConfigError(override, "override must look like section.key=value")
    dotted, _, text = override.partition("=")
    parts = [p for p in dotted.strip().split(".")]
    if not all(parts):
        raise ConfigError(dotted, "override key must be a dotted path like loader.batch_size")
    try:
        value = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as err:
        raise ConfigError(dotted, f"override value {text!r} is not valid YAML: {err}") from None
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(parts[: i + 1]), "is not a section, cannot set a key inside it")
        node = child
    node[parts[-1]] = value


def config_from_dict(
    raw: Mapping[str, Any] | None,
    *,
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
    source_path: Path | None = None,
) -> Config:
    """Validate a plain mapping (as YAML would give) into a :class:`Config`.

    Relative paths resolve against ``base_dir`` (the config file's folder when loading a file).
    """
    tree = _deep_copy(dict(raw or {}))
    for override in overrides:
        _apply_override(tree, override)
    cfg = _build(Config, tree, "", base_dir)
    return dataclasses.replace(cfg, source_path=source_path)


def _deep_copy(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _deep_copy(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_deep_copy(v) for v in tree]
    return tree


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read and validate a YAML config file; ``overrides`` are ``"a.b=value"`` strings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), f"cannot read config file: {err}") from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err.key}", err.message) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(str(path), f"invalid YAML{where}: {problem}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(str(path), f"must be a YAML mapping of sections, got {_type_name(raw)}")
    return config_from_dict(
        raw, overrides=overrides, base_dir=path.resolve().parent, source_path=path.resolve()
    )


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The fully resolved config as plain YAML-friendly types (paths as strings, tuples as lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in _yaml_fields(type(value))}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return plain(cfg)
