"""The mean and std the graphs apply (:class:`Normalization`), and applying them in the graph.

Everything here is on the [0, 1] scale; :func:`_in_input_units` is the one place where
values are multiplied by 255 for DALI (whose operators work in input units, 0–255 for uint8).
Which values a config asks for is resolved above the graphs, where the stats file is read
(:func:`dalinorm.stats.normalization.resolve_normalization`).

``normalize.mode: per_image`` standardizes each output image by its own mean and std over all
its values (pixels × channels), as TensorFlow's ``per_image_standardization`` does, with the
std floored at 1/sqrt(values) on the [0, 1] scale (255/sqrt(values) in 0–255 units), so a flat
image gives zeros, not NaN. Worked example, a 32×32 RGB output (3,072 values): the floor is
0.0180 (4.6 levels); an image whose pixels vary less than that is divided by the floor and
keeps mean 0 but has std below 1. At 224×224 (150,528 values) the floor is 0.66 levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from dalinorm.config import Config
from dalinorm.pipelines.specs import import_dali

__all__ = ["Normalization", "dali_mean_std", "normalize_images", "per_image_std_floor",
           "pooled_mean_std", "standardize_per_image"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] scale (global mode repeats one value 3 times).

    ``per_image``: mean and std are not applied (0 and 1); each image is standardized by its
    own statistics instead (``normalize.mode: per_image``)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str  # human-readable: where the values came from
    per_image: bool = False


def pooled_mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of all channels pooled, from per-channel values.

    Exact when every channel has the same pixel count (always true for images):
    E[x] = mean_c(m_c), Var[x] = mean_c(s_c² + m_c²) − E[x]².
    """
    g_mean = math.fsum(mean) / len(mean)
    second = math.fsum(s * s + m * m for m, s in zip(mean, std)) / len(mean)
    return g_mean, math.sqrt(max(second - g_mean * g_mean, 0.0))


def _in_input_units(value: float) -> float:
    """A value on the [0, 1] scale in uint8 input units (0–255), as DALI's operators see it."""
    return value * 255.0


def dali_mean_std(normalization: Normalization) -> tuple[list[float], list[float]]:
    """mean and std in 0–255 units, as ``crop_mirror_normalize`` wants them for uint8 input."""
    return ([_in_input_units(m) for m in normalization.mean],
            [_in_input_units(s) for s in normalization.std])


def per_image_std_floor(values: int) -> float:
    """The smallest std ``per_image`` divides by, on the [0, 1] scale: 1/sqrt(values), where
    ``values`` counts every pixel of every channel (TensorFlow's ``per_image_standardization``
    rule, applied to the image on the [0, 1] scale that torchvision's ``ToTensor`` gives)."""
    return 1.0 / math.sqrt(values)


def normalize_images(images, cfg: Config, normalization: Normalization, *,
                     size: tuple[int, int] | None = None, **crop_args):
    """``crop_mirror_normalize`` with the config's dtype and layout (``crop_args``: mirror, crop).

    With ``normalization.per_image`` the images are standardized each by its own mean and std
    (:func:`standardize_per_image`); ``size`` (or ``crop``) is then the output's (height,
    width), which every image of the graph shares and which sets the std floor."""
    fn, types, _ = import_dali()
    dtype = types.FLOAT16 if cfg.output.dtype == "float16" else types.FLOAT
    layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
    if not normalization.per_image:
        mean, std = dali_mean_std(normalization)
        return fn.crop_mirror_normalize(images, dtype=dtype, output_layout=layout, mean=mean,
                                        std=std, **crop_args)
    size = size or crop_args.get("crop")
    if size is None:  # a bug in the graph, not user input
        raise ValueError("normalize_images: per_image needs the output size (size= or crop=)")
    # layout, mirror and crop as usual, to float32 in 0–255 units (uint8 values are exact)
    images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout=layout,
                                      mean=[0.0], std=[1.0], **crop_args)
    images = standardize_per_image(images, values=size[0] * size[1] * 3)
    return fn.cast(images, dtype=types.FLOAT16) if cfg.output.dtype == "float16" else images


def standardize_per_image(images, *, values: int):
    """(x − mean) / max(std, floor) per image, over all its ``values`` (every axis), in float32.

    Stock operators only, so one definition runs on both devices: DALI's ``reductions.mean``
    and ``reductions.std_dev`` (population std, divides by N) reduce each sample over all its
    axes to a scalar, which broadcasts back over the image; the division is one reciprocal
    per image. The floor is :func:`per_image_std_floor` in the images' 0–255 units."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dali_math

    mean = fn.reductions.mean(images)
    std = fn.reductions.std_dev(images, mean)
    if isinstance(values, int):
        floor = _in_input_units(per_image_std_floor(values))
    else:  # a run-time size (train.size_schedule): the same rule, per sample, in float32
        floor = _in_input_units(1.0) * dali_math.rsqrt(fn.cast(values, dtype=types.FLOAT))
        if images.device == "gpu":  # the size is a CPU input; the arithmetic runs where the images are
            floor = floor.gpu()
    return (images - mean) * (1.0 / dali_math.max(std, floor))
