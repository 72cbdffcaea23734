"""DALI graphs for arrays (``data.format: numpy``, and multi-band TIFF, ``data.format: tiff``):
C channels of uint8, uint16 or float32.

Reading: the files' bytes come from the same file reader every other format uses
(:func:`~dalinorm.pipelines.readers.read_encoded`), so labels, sharding, the per-epoch
reshuffle, padding and checkpoints behave exactly as for images; DALI's ``decoders.numpy``
(CPU) turns the bytes into the array; TIFFs go through ``decoders.image`` on the CPU with
``output_type=ANY_DATA`` and the declared sample type. ``readers.numpy`` was the other candidate: it has no
labels, and its GPU backend needs GPUDirect Storage (cuFile), so on the GPU the arrays are
read and decoded on the CPU and copied over (``.gpu()``), and every later operator runs there.

Geometry is torchvision's, computed per sample from the array's shape with stock operators
(one definition for both devices): RandomResizedCrop's window (10 attempts of an area in
``train.scale`` and a log-uniform aspect ratio in ``train.ratio``, the first that fits; else
the whole image clamped to the ratio range, centered), a horizontal flip, and the eval
recipe's resize of the shorter side (long side truncated) and center crop (anchor rounded half
to even). Resizing is DALI's antialiased linear filter in float32, so 16-bit and float data are
never rounded on the way; torchvision's antialiased bilinear resize on a float tensor is the
reference (docs/PARITY.md has the measured difference). Normalization happens in input units:
mean/std on the [0, 1] scale times :func:`~dalinorm.data.arrays.array_full_scale` (255 for
uint8, 65535 for uint16, 1 for float32: float arrays are on the scale they are stored in).
"""

from __future__ import annotations

import dataclasses
import math

from dalinorm.config import Config
from dalinorm.data.arrays import array_full_scale
from dalinorm.errors import ConfigError
from dalinorm.pipelines.normalize import (
    Normalization,
    clip_images,
    dali_mean_std,
    standardize_per_image,
)
from dalinorm.pipelines.readers import labels_on_device, read_encoded
from dalinorm.pipelines.resize import torchvision_eval_geometry
from dalinorm.pipelines.specs import GraphSpec, import_dali, new_pipeline

__all__ = ["array_mean_std", "spread_channels", "build_array_decode_pipeline", "build_array_eval_pipeline",
           "build_array_stats_pipeline", "build_array_train_pipeline", "read_arrays",
           "torchvision_crop_window"]

ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params tries 10 windows


def spread_channels(values, channels: int) -> list[float]:
    """``values`` (one per channel, or one value repeated: ``global``, ``none``, a single
    given value) as a list of ``channels`` values."""
    values = list(values)
    if len(values) == channels:
        return values
    if len(set(values)) != 1:
        raise ConfigError("normalize", f"{len(values)} per-channel values for {channels} channels "
                          "(data.channels); give 1 or data.channels values")
    return values[:1] * channels


def array_mean_std(cfg: Config, normalization: Normalization) -> tuple[list[float], list[float]]:
    """mean and std of length ``data.channels`` in the arrays' input units."""
    mean, std = dali_mean_std(normalization, full_scale=array_full_scale(cfg.data.dtype))
    return spread_channels(mean, cfg.data.channels), spread_channels(std, cfg.data.channels)


def read_arrays(cfg: Config, spec: GraphSpec, *, shuffle: bool):
    """(HWC arrays on the spec's device, int64 labels, HWC shapes on the CPU)."""
    fn, types, _ = import_dali()
    encoded, labels = read_encoded(spec, shuffle=shuffle)
    if cfg.data.format == "tiff":
        # interleaved TIFFs of any sample count, exactly as stored (docs/KINDS.md); the
        # declared dtype is what the header check found, so nothing is rescaled
        sample = {"uint8": types.UINT8, "uint16": types.UINT16, "float32": types.FLOAT}
        arrays = fn.decoders.image(encoded, device="cpu", output_type=types.ANY_DATA,
                                   dtype=sample[cfg.data.dtype])
    else:
        arrays = fn.decoders.numpy(encoded)
    if cfg.data.layout == "CHW":
        arrays = fn.transpose(arrays, perm=[1, 2, 0])
    arrays = fn.reshape(arrays, layout="HWC")
    shape = arrays.shape(dtype=types.INT32)
    if spec.device_id is not None:
        arrays = arrays.gpu()
    return arrays, labels, shape


def torchvision_crop_window(shape, scale: tuple[float, float], ratio: tuple[float, float]):
    """(top, left, height, width) float DataNodes of torchvision's ``RandomResizedCrop``
    window for an image of ``shape`` (H, W, C), drawn with DALI's seeded RNGs.

    ``get_params``: up to 10 times, area = H·W·U(scale), aspect = exp(U(log ratio)), w =
    round(sqrt(area·aspect)), h = round(sqrt(area/aspect)); the first with 0 < w ≤ W and
    0 < h ≤ H wins, at top = randint(0, H − h), left = randint(0, W − w). None fits: the
    whole image with its aspect clamped to ``ratio``, centered. All 10 draws are made at once
    and the first fitting one is selected arithmetically (score 10 − i for a fit, its max).
    Rounding here is half up where Python rounds half to even: a window one pixel off on exact
    ties, which RNG draws make rare and which no test can see without torch's generator.
    """
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    h_img = fn.cast(shape[0], dtype=types.FLOAT)
    w_img = fn.cast(shape[1], dtype=types.FLOAT)
    # lo + (hi − lo)·U[0, 1), as torch's uniform_ draws; also for lo == hi (DALI's uniform
    # refuses an empty range)
    u_area = fn.random.uniform(range=[0.0, 1.0], shape=[ATTEMPTS])
    u_aspect = fn.random.uniform(range=[0.0, 1.0], shape=[ATTEMPTS])
    area = h_img * w_img * (scale[0] + (scale[1] - scale[0]) * u_area)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = dmath.exp(log_lo + (log_hi - log_lo) * u_aspect)
    w = dmath.floor(dmath.sqrt(area * aspect) + 0.5)
    h = dmath.floor(dmath.sqrt(area / aspect) + 0.5)
    fits = fn.cast((w > 0) & (w <= w_img) & (h > 0) & (h <= h_img), dtype=types.FLOAT)
    score = fits * types.Constant([float(ATTEMPTS - i) for i in range(ATTEMPTS)])
    best = fn.reductions.max(score)
    first = fn.cast(score == best, dtype=types.FLOAT) * fits  # one-hot at the first fit (or 0s)
    found = fn.cast(best > 0, dtype=types.FLOAT)
    # fallback: torchvision's whole image, aspect clamped to [ratio[0], ratio[1]]
    in_ratio = w_img / h_img
    narrow = fn.cast(in_ratio < ratio[0], dtype=types.FLOAT)
    wide = fn.cast(in_ratio > ratio[1], dtype=types.FLOAT)
    middle = 1.0 - narrow - wide
    fb_w = narrow * w_img + wide * dmath.floor(h_img * ratio[1] + 0.5) + middle * w_img
    fb_h = narrow * dmath.floor(w_img / ratio[0] + 0.5) + wide * h_img + middle * h_img
    win_w = found * fn.reductions.sum(first * w) + (1.0 - found) * fb_w
    win_h = found * fn.reductions.sum(first * h) + (1.0 - found) * fb_h
    # randint(0, extent - size + 1): floor(U[0, 1) * (extent - size + 1)), below the limit
    u_top = fn.random.uniform(range=[0.0, 1.0])
    u_left = fn.random.uniform(range=[0.0, 1.0])
    top = found * dmath.min(dmath.floor(u_top * (h_img - win_h + 1.0)), h_img - win_h) + \
        (1.0 - found) * dmath.floor((h_img - win_h) / 2.0)
    left = found * dmath.min(dmath.floor(u_left * (w_img - win_w + 1.0)), w_img - win_w) + \
        (1.0 - found) * dmath.floor((w_img - win_w) / 2.0)
    return top, left, win_h, win_w


def _resize_window(arrays, *, out_h: int, out_w: int, top, left, height, width, full_h=None,
                   full_w=None):
    """The out_h × out_w float32 resize of the window (top, left, height, width): of the
    array itself, or (``full_*``) of the array resized to full_h × full_w (eval's resize then
    center crop, computing only the crop: DALI's resize reads outside the region of interest,
    so the window's values are those of the full resize)."""
    fn, types, _ = import_dali()
    common = dict(interp_type=types.INTERP_LINEAR, antialias=True, dtype=types.FLOAT,
                  size=[out_h, out_w])
    if full_h is None:
        return fn.resize(arrays, roi_start=fn.stack(top, left),
                         roi_end=fn.stack(top + height, left + width), **common)
    return fn.resize(arrays, roi_relative=True, roi_start=fn.stack(top / full_h, left / full_w),
                     roi_end=fn.stack((top + out_h) / full_h, (left + out_w) / full_w), **common)


def _normalize(arrays, cfg: Config, normalization: Normalization, *, size: int, mirror=None):
    """crop_mirror_normalize to the output dtype and layout with C-length mean/std (or
    per_image standardization over all size² × C values)."""
    fn, types, _ = import_dali()
    dtype = types.FLOAT16 if cfg.output.dtype == "float16" else types.FLOAT
    layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
    extra = {} if mirror is None else {"mirror": mirror}
    if normalization.per_image:
        scale = array_full_scale(cfg.data.dtype)
        images = fn.crop_mirror_normalize(arrays, dtype=types.FLOAT, output_layout=layout,
                                          mean=[0.0], std=[1.0], **extra)
        # standardize_per_image floors the std in 0–255 units; scale to that unit first
        images = standardize_per_image(images * (255.0 / scale),
                                       values=size * size * cfg.data.channels)
        return fn.cast(images, dtype=types.FLOAT16) if cfg.output.dtype == "float16" else images
    if normalization.clipped:  # normalize.mode: percentile (integer arrays: histogram levels)
        arrays = clip_images(arrays, normalization, full_scale=array_full_scale(cfg.data.dtype))
    mean, std = array_mean_std(cfg, normalization)
    return fn.crop_mirror_normalize(arrays, dtype=dtype, output_layout=layout, mean=mean, std=std,
                                    **extra)


def build_array_train_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """RandomResizedCrop + RandomHorizontalFlip + Normalize on arrays, both devices."""
    fn, _, _ = import_dali()
    pipe = new_pipeline(cfg, spec)
    size = cfg.train.size
    with pipe:
        arrays, labels, shape = read_arrays(cfg, spec, shuffle=True)
        top, left, height, width = torchvision_crop_window(shape, cfg.train.scale, cfg.train.ratio)
        images = _resize_window(arrays, out_h=size, out_w=size, top=top, left=left,
                                height=height, width=width)
        mirror = fn.random.coin_flip(probability=cfg.train.hflip)
        images = _normalize(images, cfg, normalization, size=size, mirror=mirror)
        pipe.set_outputs(images, labels_on_device(labels, spec))
    return pipe


def _eval_window(cfg: Config, arrays, shape):
    new_h, new_w, top, left = torchvision_eval_geometry(shape, cfg.eval.resize_shorter, cfg.eval.crop)
    return _resize_window(arrays, out_h=cfg.eval.crop, out_w=cfg.eval.crop, top=top, left=left,
                          height=None, width=None, full_h=new_h, full_w=new_w)


def build_array_eval_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """Resize(resize_shorter) + CenterCrop(crop) + Normalize on arrays, both devices."""
    pipe = new_pipeline(cfg, spec)
    with pipe:
        arrays, labels, shape = read_arrays(cfg, spec, shuffle=False)
        images = _normalize(_eval_window(cfg, arrays, shape), cfg, normalization,
                            size=cfg.eval.crop)
        pipe.set_outputs(images, labels_on_device(labels, spec))
    return pipe


def build_array_decode_pipeline(cfg: Config, spec: GraphSpec):
    """Read and decode only (the arrays as stored, HWC): the read floor of ``bench``."""
    pipe = new_pipeline(cfg, spec)
    with pipe:
        arrays, _, _ = read_arrays(cfg, spec, shuffle=False)
        pipe.set_outputs(arrays)
    return pipe


def build_array_stats_pipeline(cfg: Config, spec: GraphSpec):
    """The arrays in order, on the CPU, as the statistics pass reduces them (HWC, as stored;
    ``stats.resolution: eval``: the float32 eval window before normalization)."""
    cpu = dataclasses.replace(spec, device_id=None)
    pipe = new_pipeline(cfg, cpu)
    with pipe:
        arrays, _, shape = read_arrays(cfg, cpu, shuffle=False)
        if cfg.stats.resolution == "eval":
            arrays = _eval_window(cfg, arrays, shape)
        pipe.set_outputs(arrays)
    return pipe
