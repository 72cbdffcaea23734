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

``normalize.mode: percentile`` clips each channel to [``clip_low``, ``clip_high``] first
(``math.clamp`` on the resized image, per-channel constants broadcast over H and W; the
bounds are integer levels, so the clipped values are exact integers), then applies mean and
std as usual: (lo, hi − lo) maps the clipped range to [0, 1], the clipped pixels' own mean
and std standardize it. On the CPU's exact resize the clip happens inside the fused resize +
normalize operator (:func:`fused_normalize_args`): DALI's CPU ``math.clamp`` cost 2.3–3.5 ms
per 224² RGB image on one thread (2026-12-01), a min and a max in the numba loop next to
nothing. ``per_image`` and
``keep_background`` take the unfused path (:attr:`Normalization.fusable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from dalinorm.config import Config
from dalinorm.pipelines.kinds import full_scale_of
from dalinorm.pipelines.specs import import_dali

__all__ = ["Normalization", "clip_images", "dali_clip_bounds", "dali_mean_std",
           "fused_normalize_args", "normalize_images", "per_image_std_floor", "pooled_mean_std",
           "standardize_per_image"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std on the [0, 1] scale (global mode repeats one value 3 times).

    ``per_image``: mean and std are not applied (0 and 1); each image is standardized by its
    own statistics instead (``normalize.mode: per_image``).

    ``clip_low``/``clip_high`` (``normalize.mode: percentile``): per-channel bounds on the
    [0, 1] scale that every value is clipped to before mean and std apply; None: no clip."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str  # human-readable: where the values came from
    per_image: bool = False
    clip_low: tuple[float, ...] | None = None
    clip_high: tuple[float, ...] | None = None
    # normalize.keep_background: the background per channel on the [0, 1] scale; output
    # pixels equal to it in every channel keep it instead of being normalized
    keep_background: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.clip_low is None) != (self.clip_high is None):  # a bug in the caller
            raise ValueError("Normalization: clip_low and clip_high go together")

    @property
    def clipped(self) -> bool:
        return self.clip_low is not None

    @property
    def fusable(self) -> bool:
        """(clamp(x, lo, hi) − mean) / std per channel, what the CPU's fused resize +
        normalize operator computes; per_image and keep_background take the unfused path."""
        return not self.per_image and self.keep_background is None


def pooled_mean_std(mean: Sequence[float], std: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of all channels pooled, from per-channel values.

    Exact when every channel has the same pixel count (always true for images):
    E[x] = mean_c(m_c), Var[x] = mean_c(s_c² + m_c²) − E[x]².
    """
    g_mean = math.fsum(mean) / len(mean)
    second = math.fsum(s * s + m * m for m, s in zip(mean, std)) / len(mean)
    return g_mean, math.sqrt(max(second - g_mean * g_mean, 0.0))


def _in_input_units(value: float, full_scale: float = 255.0) -> float:
    """A value on the [0, 1] scale in input units, as DALI's operators see it: 0–255 for
    uint8, 0–65535 for uint16 (``full_scale``), float32 arrays as stored (1.0)."""
    return value * full_scale


def dali_mean_std(normalization: Normalization, *, full_scale: float = 255.0,
                  ) -> tuple[list[float], list[float]]:
    """mean and std in input units (0–255 by default), as ``crop_mirror_normalize`` wants them."""
    return ([_in_input_units(m, full_scale) for m in normalization.mean],
            [_in_input_units(s, full_scale) for s in normalization.std])


def dali_clip_bounds(normalization: Normalization, *, full_scale: float = 255.0,
                     ) -> tuple[list[float], list[float]]:
    """clip_low and clip_high in input units (``full_scale`` as in :func:`dali_mean_std`),
    rounded to the integer levels they are: a stats file's percentiles are histogram bins,
    and k / 255 * 255 may land a hair off k in float64."""
    return ([float(round(_in_input_units(v, full_scale))) for v in normalization.clip_low],
            [float(round(_in_input_units(v, full_scale))) for v in normalization.clip_high])


def fused_normalize_args(normalization: Normalization, layout: str, mirror, *,
                         full_scale: float = 255.0) -> tuple:
    """``normalize=`` of :func:`~dalinorm.pipelines.resample.pil_resize_numba` for a
    :attr:`~Normalization.fusable` normalization: mean and std in input units, the layout,
    the mirror node (or None), and the clip bounds (None, None without a clip)."""
    if not normalization.fusable:  # a bug in the graph: these would be silently dropped
        raise ValueError("fused_normalize_args: per_image/keep_background cannot be fused")
    mean, std = dali_mean_std(normalization, full_scale=full_scale)
    low, high = (dali_clip_bounds(normalization, full_scale=full_scale) if normalization.clipped
                 else (None, None))
    return mean, std, layout, mirror, low, high


def clip_images(images, normalization: Normalization, *, full_scale: float = 255.0):
    """``math.clamp`` of HWC images to the per-channel clip bounds, exact: for 8- and 16-bit
    images the bounds are constants of the image's own type, so the clamp stays in integers
    (a float bound would promote the image to float32: on the CPU, one thread, 224² RGB,
    3.9 ms per image against 2.6 for uint8, 2026-12-01); float32 arrays are clamped in
    float32. Stock operators: one definition for both devices. The CPU's exact resize clips
    inside its fused operator instead (:func:`fused_normalize_args`)."""
    import numpy as np
    from nvidia.dali import math as dali_math

    _, types, _ = import_dali()
    low, high = dali_clip_bounds(normalization, full_scale=full_scale)
    kind = {255.0: np.uint8, 65535.0: np.uint16}.get(float(full_scale), np.float32)
    return dali_math.clamp(images, types.Constant(np.array(low, kind)),
                           types.Constant(np.array(high, kind)))


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
    full_scale = full_scale_of(cfg.data.dtype)  # 255, or 65535 for 16-bit data
    if normalization.keep_background is not None:
        return _keep_background(images, cfg, normalization, full_scale, crop_args)
    if normalization.clipped:  # in the same input units as dali_mean_std's below
        images = clip_images(images, normalization, full_scale=full_scale)
    if not normalization.per_image:
        mean, std = dali_mean_std(normalization, full_scale=full_scale)
        return fn.crop_mirror_normalize(images, dtype=dtype, output_layout=layout, mean=mean,
                                        std=std, **crop_args)
    size = size or crop_args.get("crop")
    if size is None:  # a bug in the graph, not user input
        raise ValueError("normalize_images: per_image needs the output size (size= or crop=)")
    # layout, mirror and crop as usual, to float32 in 0–255 units (uint8 values are exact)
    images = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout=layout,
                                      mean=[0.0], std=[1.0], **crop_args)
    images = standardize_per_image(images, values=size[0] * size[1] * cfg.data.channels,
                                   full_scale=full_scale)
    return fn.cast(images, dtype=types.FLOAT16) if cfg.output.dtype == "float16" else images


def _keep_background(images, cfg: Config, normalization: Normalization, full_scale: float,
                     crop_args: dict):
    """``normalize.keep_background``: normalized where a pixel differs from the background in
    some channel, the background's own value (on the [0, 1] scale) where it equals it in all.

    The joint mask is taken on the integer image before any clip, then goes through the same
    ``crop_mirror_normalize`` (same crop, same mirror node, same layout) as the image, so it
    lines up with the output; y·(1 − m) + m·b is exact for m in {0, 1}."""
    import numpy as np

    fn, types, _ = import_dali()
    layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
    levels = [int(round(_in_input_units(v, full_scale))) for v in normalization.keep_background]
    equal = fn.cast(images == types.Constant(np.array(levels, np.int32)), dtype=types.UINT8)
    mask = fn.reductions.min(equal, axes=[2], keep_dims=True)  # HWC → HW1
    if normalization.clipped:
        images = clip_images(images, normalization, full_scale=full_scale)
    mean, std = dali_mean_std(normalization, full_scale=full_scale)
    out = fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout=layout, mean=mean,
                                   std=std, **crop_args)
    mask = fn.crop_mirror_normalize(mask, dtype=types.FLOAT, output_layout=layout, mean=[0.0],
                                    std=[1.0], **crop_args)
    value = np.array(normalization.keep_background, np.float32)
    value = types.Constant(value.reshape(-1, 1, 1) if layout == "CHW" else value)
    out = out * (1.0 - mask) + mask * value
    return fn.cast(out, dtype=types.FLOAT16) if cfg.output.dtype == "float16" else out


def standardize_per_image(images, *, values: int, full_scale: float = 255.0):
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
        floor = _in_input_units(per_image_std_floor(values), full_scale)
    else:  # a run-time size (train.size_schedule): the same rule, per sample, in float32
        floor = _in_input_units(1.0, full_scale) * dali_math.rsqrt(fn.cast(values, dtype=types.FLOAT))
        if images.device == "gpu":  # the size is a CPU input; the arithmetic runs where the images are
            floor = floor.gpu()
    return (images - mean) * (1.0 / dali_math.max(std, floor))
