"""Parity of the DALI eval path with the classic torchvision recipe, image by image.

``run_eval_parity(cfg, split="val", n=21)`` feeds the first ``n`` images of a split through
both paths with the same config — DALI's eval graph (``DaliLoader(cfg, "val")``, whose order
is ``ImageFolder``'s) and torchvision's ``Resize(resize_shorter)`` + ``CenterCrop(crop)`` +
``PILToTensor`` + ``ToDtype(scale)`` + ``Normalize`` on the PIL image, in the configured dtype
and layout — and compares them per image. Differences are reported per channel in normalized
units and in uint8 levels (``level = diff * 255 * std_c``: one level is one step of the uint8
pixel the network's input came from), with the images that differ most.

The tolerances below are what the parity suite (tests/test_parity.py) and ``dalinorm parity``
hold DALI to; docs/PARITY.md lists every known difference, its cause and the residual measured.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dalinorm.config import Config
from dalinorm.pipelines.kinds import full_scale_of
from dalinorm.stats.file import channel_names

log = logging.getLogger(__name__)

__all__ = [
    "ARRAY_TOLERANCES",
    "ArrayTolerance",
    "array_tolerance_for",
    "ImageDiff",
    "LEVEL_ROUNDING",
    "NORMALIZE_ATOL_FLOAT16",
    "NORMALIZE_ATOL_FLOAT32",
    "ParityReport",
    "TOLERANCES",
    "TOLERANCES_BICUBIC",
    "TRAIN_EDGE_MAX_LEVELS",
    "Tolerance",
    "format_report",
    "run_eval_parity",
    "tolerance_for",
    "write_report",
]

# --------------------------------------------------------------------------- tolerances
# One table, keyed by (where DALI decodes, loader.resize), used by tests/test_parity.py and by
# `dalinorm parity` alike. Differences are whole uint8 levels (both paths resize uint8 pixels)
# plus the float rounding of the normalization, well under half a level: a max bound of k
# levels therefore passes k + 0.5 (LEVEL_ROUNDING) and fails k + 1. docs/PARITY.md has the
# measurements behind each row and the commands that produced them.

# Normalization alone, on the same uint8 input: crop_mirror_normalize computes
# (x - 255·m) / (255·s) in float32 while torchvision computes (x/255 - m) / s; both round
# differently by a few float32 ulps of values up to |x| ≈ 2.7 (≈ 2.4e-7 each), so 1e-5 is
# generous for float32. float16 output rounds to 11 significant bits: half an ulp at |x| < 4
# is ≤ 9.8e-4, hence 1e-3, for outputs within ±4 (ImageNet's statistics give |x| ≤ 2.7;
# a std below a quarter of the pixel range gives larger outputs and float16 steps to match).
NORMALIZE_ATOL_FLOAT32 = 1e-5
NORMALIZE_ATOL_FLOAT16 = 1e-3
LEVEL_ROUNDING = 0.5

# Train (RandomResizedCrop), same window, DALI's own resize (pil_dali; pil on the GPU): inside
# the window's outermost row and column the table's bounds hold (tests/test_parity.py). On
# those edge rows and columns of a downscaled axis, PIL drops the filter taps that fall outside
# the window and renormalizes the rest, while DALI's resize repeats the edge pixel for them:
# the taps outside carry at most 1/8 of the triangle's weight (its outer half beyond the edge),
# so one pass moves an edge pixel by at most 255/8 ≈ 32 levels, and only as far as the edge
# pixel differs from its neighbours (measured ≤ 14 levels on noise, ≤ 8 on ImageNet-like
# photos). The eval crop never contains those rows unless eval.crop == eval.resize_shorter.
# The CPU's pil renormalizes as PIL does: exact there too.
TRAIN_EDGE_MAX_LEVELS = 32.0

_WORST = 5  # images listed in the report


@dataclass(frozen=True)
class Tolerance:
    """The largest per-channel differences that count as parity: uint8 levels for the paths
    that differ by design, the float rounding of the normalization alone for exact ones."""

    max_levels: float
    mean_levels: float
    why: str
    exact: bool = False  # bit-exact path: normalized max_abs within the normalization's rounding
    provisional: bool = False  # not measured on this device yet (docs/PARITY.md)

    def max_abs(self, dtype: str) -> float:
        """The normalized bound of an exact path in ``dtype``."""
        return NORMALIZE_ATOL_FLOAT16 if dtype == "float16" else NORMALIZE_ATOL_FLOAT32


# GPU bounds (provisional): nvJPEG computes the IDCT and upsamples chroma differently from
# libjpeg by design (DALI#1889, #3610). Measured on an H100 against PIL (docs/PARITY.md): 500
# q90 4:2:0 ImageNet-like photos decode max 30–33 levels apart, 0.33–0.45 mean; their eval
# output (256 → 224, pil) max 17/8/20, mean 0.32/0.26/0.32 per channel; train windows max 20,
# mean 0.21. Bounds: the decode max plus a few levels, about twice the eval mean. Single pixels
# of tiny, progressive or low-quality 4:2:0 files with saturated colour edges differ by up to
# 119 levels (0.5–13.7 mean per image): such files FAIL this bound and are named in the
# report's worst images, which is the point. `fast` adds its resize residual (CPU row).
_GPU_MAX_LEVELS = 40.0
_GPU_MEAN_LEVELS = 0.6
_GPU_WHY = "GPU decode: nvJPEG differs from libjpeg by design; provisional, from H100 figures"

# 16-bit bounds, measured 2026-12-01 (CPU; tests/test_image_kinds.py's data: textured
# 16-bit grayscale PNG + TIFF and 16-bit RGB PNG, sizes 45–97 px): inside the crop only float32
# rounding, max 0.0026 level, mean ≤ 4e-5 (resize/crop 40/32, 30/28, 64/48, 100/90); with
# crop == resize_shorter the window's outermost rows and columns differ by design (DALI
# repeats the edge pixel, torch renormalizes the taps, as for 8 bits): max 10.7 levels, mean
# 0.085. Bounds: 1.5× those; a window one pixel off costs hundreds of levels on these images.
_U16_MAX, _U16_MEAN = 16.0, 0.2

TOLERANCES: dict[tuple[str, str], Tolerance] = {
    # decode bit-identical to PIL, resize = Pillow's own fixed point: only float rounding left
    ("cpu", "pil"): Tolerance(0.0, 0.0, "CPU decode + Pillow's arithmetic: bit-exact", exact=True),
    # DALI's resize in PIL's pass order: one level at rounding boundaries, ties at 5:4 scales.
    # Measured max 1 level everywhere; mean 0.0003–0.0016 on the sample data, 0.0046–0.034 on
    # 120 natural-like images (80/64 … 256/224), ≈0.04 on images resized exactly 5:4. Bound:
    # one level of margin on the max, 2.5× the 5:4 case on the mean; a window one pixel off
    # costs ≥ 2.5 levels mean (tests/test_parity.py's ramps)
    ("cpu", "pil_dali"): Tolerance(2.0, 0.1, "CPU decode + DALI's two-pass resize"),
    # one 2-D DALI resize: measured max 1 level, mean 0.114–0.171 (natural-like images and the
    # sample data, 80/64 … 256/224). Bound: one level of margin, ≈1.5× the worst mean
    ("cpu", "fast"): Tolerance(2.0, 0.25, "CPU decode + one 2-D DALI resize"),
    ("gpu", "pil"): Tolerance(_GPU_MAX_LEVELS, _GPU_MEAN_LEVELS, _GPU_WHY, provisional=True),
    ("gpu", "pil_dali"): Tolerance(_GPU_MAX_LEVELS, _GPU_MEAN_LEVELS, _GPU_WHY, provisional=True),
    ("gpu", "fast"): Tolerance(_GPU_MAX_LEVELS + 2.0, _GPU_MEAN_LEVELS + 0.25,
                               _GPU_WHY + " + one 2-D DALI resize", provisional=True),
    # 16-bit data (data.dtype uint16, any loader.resize), in 16-bit levels (1/65535): DALI's
    # 2-D linear resize in float32 (pipelines/resize.float_resize) vs torchvision's
    # antialiased bilinear Resize on x/65535 in float32; PNG and TIFF decode exactly on both
    # sides. Measurements above _U16_MAX.
    ("cpu", "uint16"): Tolerance(_U16_MAX, _U16_MEAN, "16-bit: DALI's float resize vs "
                                 "torchvision's float Resize"),
    ("gpu", "uint16"): Tolerance(_U16_MAX, _U16_MEAN, "16-bit: DALI's float resize on the GPU "
                                 "vs torchvision's; not measured on a GPU yet", provisional=True),
}


@dataclass(frozen=True)
class ArrayTolerance:
    """Parity bound of the array graphs (``data.format: numpy``) on the data's own scale
    ([0, 1] for uint8/uint16, as stored for float32): the normalized difference times the
    channel's std. Both paths resize in float32, so inside the output only float rounding is
    left (``max_abs``). The outermost row and column of an axis whose window reaches the
    array's edge while shrinking differ by design: torch (like PIL) drops the filter taps that
    fall outside and renormalizes the rest, DALI repeats the edge pixel for them; those taps
    weigh at most 1/8 of the triangle (``edge_fraction`` of the data's range)."""

    max_abs: float
    why: str
    edge_fraction: float = 0.125
    provisional: bool = False
    # `dalinorm parity` compares whole outputs, edges included: their mean may reach this
    # fraction of the data's range (measured 1.24e-4 with the 30/30 and 17/17 geometries)
    mean_fraction: float = 3e-4

    def in_levels(self, value_range: float) -> "Tolerance":
        """The bound as :class:`Tolerance` in levels of data spanning ``value_range`` levels
        (``dalinorm parity``'s units): edges may differ by ``edge_fraction`` of it, the mean by
        ``mean_fraction``."""
        return Tolerance(self.edge_fraction * value_range, self.mean_fraction * value_range,
                         f"arrays: {self.why}; edges of windows at the array's edge",
                         provisional=self.provisional)


# Keyed by (where DALI runs, data.dtype). Measured on the CPU with
# benchmarks/array_parity_bounds.py (docs/PARITY.md, "Arrays"): 4 seeds × 4 eval geometries
# (resize/crop 30/28, 30/30, 64/48 upscaling, 17/17) of 10 mixed-size 8-band arrays: inside
# max 1.3e-6 (uint8, uint16: values in [0, 1]) and 3.8e-6 (float32 values in [-1, 2]); edges
# of the windows that reach the array's edge up to 0.024 of a [0, 1] range (1/41). Bounds:
# about 1.5× the measured inside max; the edge bound is the 1/8 the filter allows.
ARRAY_TOLERANCES: dict[tuple[str, str], ArrayTolerance] = {
    ("cpu", "uint8"): ArrayTolerance(2e-6, "DALI's float32 linear resize vs torch's antialiased "
                                     "bilinear on x/255: float32 rounding only"),
    ("cpu", "uint16"): ArrayTolerance(2e-6, "the same on x/65535"),
    ("cpu", "float32"): ArrayTolerance(6e-6, "the same on values up to |x| = 2 as stored"),
    ("gpu", "uint8"): ArrayTolerance(1e-5, "GPU resize in float32; not measured yet",
                                     provisional=True),
    ("gpu", "uint16"): ArrayTolerance(1e-5, "GPU resize in float32; not measured yet",
                                      provisional=True),
    ("gpu", "float32"): ArrayTolerance(3e-5, "GPU resize in float32; not measured yet",
                                       provisional=True),
}


def array_tolerance_for(device: str, dtype: str) -> ArrayTolerance:
    """The parity bound of the array graphs on ``device`` ("cpu"/"gpu") for ``data.dtype``."""
    try:
        return ARRAY_TOLERANCES[(device, dtype)]
    except KeyError:
        raise ValueError(f"no array parity tolerance for device {device!r} with data.dtype "
                         f"{dtype!r}; expected one of {sorted(ARRAY_TOLERANCES)}") from None


# eval.interpolation / train.interpolation: bicubic, same keys. The CPU's pil runs Pillow's
# bicubic arithmetic itself (a = -0.5, support 2 widened when shrinking, clip8 per pass):
# bit-exact as bilinear is. DALI's cubic (pil_dali, fast, and the GPU) is measured against
# torchvision's BICUBIC on PIL images with
#     python benchmarks/parity_bounds.py /tmp/pb --interpolation bicubic
# (docs/PARITY.md, "Bicubic"). The GPU rows are NOT measured: the GPU bilinear rows plus what
# bicubic added on the CPU.
TOLERANCES_BICUBIC: dict[tuple[str, str], Tolerance] = {
    # measured max 0 levels, 1e-5 mean (float rounding) on 120 natural-like images and the
    # sample data, 80/64 … 256/224, val and train images
    ("cpu", "pil"): Tolerance(0.0, 0.0, "CPU decode + Pillow's bicubic arithmetic: bit-exact",
                              exact=True),
    # DALI's cubic in PIL's pass order, each pass rounded and saturated to uint8 as PIL clips:
    # measured max 2–3 levels at 256/224 and 146/128, 6 at 80/64 (small images upscaled: DALI
    # repeats the edge pixel where PIL renormalizes, and the cubic's negative lobe reaches
    # further than the triangle); mean 0.0026–0.021, 0.038 at 80/64. Bound: two levels of
    # margin on the max, 2.5× the worst mean
    ("cpu", "pil_dali"): Tolerance(8.0, 0.1, "CPU decode + DALI's two-pass cubic resize"),
    # one 2-D DALI cubic resize keeps the intermediate in float, unclipped: where PIL clips the
    # first pass's overshoot at a hard edge the two differ by what was clipped. Measured max
    # 6–11 levels, mean 0.126–0.185. Bound: three levels of margin, ≈1.6× the worst mean
    ("cpu", "fast"): Tolerance(14.0, 0.3, "CPU decode + one 2-D DALI cubic resize"),
    ("gpu", "pil"): Tolerance(_GPU_MAX_LEVELS + 6.0, _GPU_MEAN_LEVELS + 0.1,
                              _GPU_WHY + "; cubic: CPU pil_dali excess added, not measured on a GPU",
                              provisional=True),
    ("gpu", "pil_dali"): Tolerance(_GPU_MAX_LEVELS + 6.0, _GPU_MEAN_LEVELS + 0.1,
                                   _GPU_WHY + "; cubic: CPU pil_dali excess added, not measured "
                                   "on a GPU", provisional=True),
    ("gpu", "fast"): Tolerance(_GPU_MAX_LEVELS + 14.0, _GPU_MEAN_LEVELS + 0.3,
                               _GPU_WHY + " + one 2-D DALI cubic resize; not measured on a GPU",
                               provisional=True),
    # 16-bit, bicubic: the reference is torchvision's bicubic on a float tensor, whose Keys
    # coefficient is PyTorch's a = -0.75, while DALI's cubic is a = -0.5 (PIL's): the two
    # filters differ by design. Measured on sample_data/gray16 (val, 4 images): max 10.0
    # 16-bit levels, per-image mean 0.27–0.41 (`dalinorm parity configs/sample_gray16.yaml
    # --set eval.interpolation=bicubic`). Bound: 1.6× both
    ("cpu", "uint16"): Tolerance(16.0, 0.66, "16-bit bicubic: DALI's cubic (a = -0.5) vs "
                                 "torchvision's tensor bicubic (a = -0.75), float32"),
    ("gpu", "uint16"): Tolerance(16.0, 0.66, "16-bit bicubic on the GPU vs torchvision's tensor "
                                 "bicubic; not measured on a GPU", provisional=True),
}


def tolerance_for(device: str, resize: str, interpolation: str = "bilinear") -> Tolerance:
    """The parity bound of DALI decoding on ``device`` ("cpu"/"gpu") with ``loader.resize``
    and the eval resize filter ``interpolation`` (bilinear: TOLERANCES, bicubic:
    TOLERANCES_BICUBIC)."""
    table = TOLERANCES_BICUBIC if interpolation == "bicubic" else TOLERANCES
    try:
        return table[(device, resize)]
    except KeyError:
        raise ValueError(f"no parity tolerance for device {device!r} with loader.resize "
                         f"{resize!r} ({interpolation}); expected one of {sorted(table)}") from None


@dataclass(frozen=True)
class ImageDiff:
    """How one image's two outputs differ (levels: over all channels and pixels)."""

    file: str
    max_levels: float
    mean_levels: float
    shape_dali: tuple[int, ...]
    shape_reference: tuple[int, ...]

    @property
    def shapes_match(self) -> bool:
        return self.shape_dali == self.shape_reference


@dataclass(frozen=True)
class ParityReport:
    """Per-channel differences of DALI's eval output and torchvision's over ``num_images``."""

    split: str
    num_images: int
    device: str  # where DALI decoded: cpu or gpu
    dtype: str
    layout: str
    normalization: str
    std: tuple[float, float, float]  # [0, 1] scale, to turn normalized units into levels
    max_abs: tuple[float, float, float]  # normalized units, per channel
    mean_abs: tuple[float, float, float]
    tolerance: Tolerance
    shape_mismatches: tuple[str, ...] = ()
    worst: tuple[ImageDiff, ...] = ()
    compared_pixels: int = 0  # per channel, over images whose shapes match

    @property
    def max_levels(self) -> tuple[float, ...]:
        return tuple(d * 255.0 * s for d, s in zip(self.max_abs, self.std))

    @property
    def mean_levels(self) -> tuple[float, ...]:
        return tuple(d * 255.0 * s for d, s in zip(self.mean_abs, self.std))

    def failures(self) -> list[str]:
        """What exceeds the tolerance, one line each; empty when the two paths agree."""
        out = []
        tol = self.tolerance
        if self.shape_mismatches:
            out.append(f"{len(self.shape_mismatches)} images have different output shapes")
        if tol.exact:
            bound = tol.max_abs(self.dtype)
            for name, value, levels in zip(channel_names(len(self.max_abs)), self.max_abs,
                                           self.max_levels):
                if value > bound:
                    out.append(f"channel {name}: max {value:.2e} normalized ({levels:.3f} levels) "
                               f"> {bound:g}: this path is bit-exact")
            return out
        for name, value in zip(channel_names(len(self.max_levels)), self.max_levels):
            if value > tol.max_levels + LEVEL_ROUNDING:
                out.append(f"channel {name}: max {value:.3f} levels > {tol.max_levels:g}")
        for name, value in zip(channel_names(len(self.mean_levels)), self.mean_levels):
            if value > tol.mean_levels:
                out.append(f"channel {name}: mean {value:.4f} levels > {tol.mean_levels:g}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["max_levels"] = list(self.max_levels)
        data["mean_levels"] = list(self.mean_levels)
        data["passed"] = self.passed
        data["failures"] = self.failures()
        return data


# --------------------------------------------------------------------------- the two paths
def _dali_eval_batches(cfg: Config, split: str):
    """(listing, device, batches of numpy outputs) of DALI's eval graph over ``split``, one
    process, in the listing's order.

    ``val`` goes through ``DaliLoader`` exactly as training code iterates it. ``train`` gets
    the same eval graph over the training images (DaliLoader's train split augments instead).
    """
    import numpy as np

    from dalinorm.integration.loader import DaliLoader

    if split == "val":
        loader = DaliLoader(cfg, "val", rank=0, world_size=1)
        device = "cpu" if loader.device_id is None else "gpu"

        def batches():
            try:
                for images, _ in loader:
                    if cfg.output.layout == "NHWC":  # [N, C, H, W] channels_last: its memory order
                        images = images.permute(0, 2, 3, 1)
                    yield images.float().cpu().numpy()
            finally:
                loader.close()

        return loader.listing, device, batches()

    from dalinorm.pipelines.device import resolve_device_id
    from dalinorm.pipelines.graphs import build_eval_pipeline
    from dalinorm.pipelines.run import run_batches
    from dalinorm.pipelines.specs import GraphSpec
    from dalinorm.pipelines.usable import usable_listing
    from dalinorm.stats.normalization import resolve_normalization

    listing, _ = usable_listing(cfg, split)
    device_id = resolve_device_id(cfg.loader.device)
    # the files, or a pack's tars in order
    spec = GraphSpec.for_block(listing, 0, len(listing), device_id=device_id, seed=cfg.loader.seed)
    pipe = build_eval_pipeline(cfg, spec, resolve_normalization(cfg))
    pipe.build()
    n_batches = math.ceil(len(listing) / cfg.loader.batch_size)

    def batches():
        for images, _ in run_batches(pipe, n_batches):
            images = images.as_cpu() if hasattr(images, "as_cpu") else images
            yield np.stack([np.asarray(images[i], dtype=np.float32) for i in range(len(images))])

    return listing, "cpu" if device_id is None else "gpu", batches()


def _reference_outputs(cfg: Config, listing, limit: int):
    """torchvision's eval transform of the first ``limit`` images of ``listing``, as float32
    numpy in the configured layout, after the configured dtype (the reference loader casts to
    float16 the same way). Images are read from the listing's sources: their files, or their
    bytes inside a pack's tars (a pack's original paths need not exist)."""
    import torch

    from dalinorm.integration.reference import (
        LoadArray,
        open_image,
        reference_array_transform,
        reference_transform,
    )

    if cfg.data.reads_arrays:
        transform = reference_array_transform(cfg, "val")
        load = LoadArray(cfg.data.layout, cfg.data.dtype, cfg.data.format)
    else:
        transform, load = reference_transform(cfg, "val"), open_image(cfg)
    for i in range(limit):
        x = transform(load(listing.source(i)))
        if cfg.output.layout == "NHWC":
            x = x.permute(1, 2, 0)
        if cfg.output.dtype == "float16":
            x = x.to(torch.float16)
        yield x.float().numpy()


def run_eval_parity(cfg: Config, *, split: str = "val", n: int | None = None) -> ParityReport:
    """Compare DALI's eval output with torchvision's classic recipe on the first ``n`` images
    of ``split`` (all when None), image by image. Decodes on ``loader.device``."""
    import numpy as np

    from dalinorm.stats.normalization import resolve_normalization

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    norm = resolve_normalization(cfg)
    listing, device, dali_batches = _dali_eval_batches(cfg, split)
    files = listing.files
    limit = len(files) if n is None else min(n, len(files))
    channel_axis = 0 if cfg.output.layout == "NCHW" else 2
    other_axes = tuple(a for a in range(3) if a != channel_axis)

    channels = cfg.data.channels
    max_abs = np.zeros(channels)
    sum_abs = np.zeros(channels)
    pixels = 0
    per_image: list[ImageDiff] = []
    mismatches: list[str] = []
    # one level: one step of the integer pixel (1/255, or 1/65535 for 16-bit data)
    levels_per_unit = full_scale_of(cfg.data.dtype) * np.asarray(norm.std)
    reference = _reference_outputs(cfg, listing, limit)
    index = 0
    for batch in dali_batches:
        for dali in batch:
            if index >= limit:
                break
            ref = next(reference)
            name = _display_name(files[index], cfg)
            index += 1
            if dali.shape != ref.shape:
                mismatches.append(name)
                per_image.append(ImageDiff(name, math.inf, math.inf, dali.shape, ref.shape))
                continue
            diff = np.abs(dali.astype(np.float64) - ref.astype(np.float64))
            max_abs = np.maximum(max_abs, diff.max(axis=other_axes))
            sum_abs += diff.sum(axis=other_axes)
            pixels += diff.size // channels
            levels = np.moveaxis(diff, channel_axis, -1) * levels_per_unit
            per_image.append(ImageDiff(name, float(levels.max()), float(levels.mean()),
                                       dali.shape, ref.shape))
        if index >= limit:
            break
    if index < limit:  # a bug, not input: the loader yields every image of the split
        raise RuntimeError(f"DALI produced {index} images, expected {limit}")
    dali_batches.close()
    # max levels are multiples of one level up to float rounding: rank by them, then the mean
    worst = sorted(per_image, key=lambda d: (round(d.max_levels, 3), d.mean_levels), reverse=True)
    report = ParityReport(
        split=split,
        num_images=limit,
        device=device,
        dtype=cfg.output.dtype,
        layout=cfg.output.layout,
        normalization=norm.origin,
        std=tuple(norm.std),
        max_abs=tuple(float(v) for v in max_abs),
        mean_abs=tuple(float(v) for v in sum_abs / max(pixels, 1)),
        tolerance=_tolerance_of(cfg, device, listing, limit),
        shape_mismatches=tuple(mismatches),
        worst=tuple(worst[:_WORST]),
        compared_pixels=pixels,
    )
    log.info("parity %s: %d images, %s", split, limit, "pass" if report.passed else "FAIL")
    return report


def _tolerance_of(cfg: Config, device: str, listing, limit: int) -> Tolerance:
    """The bound ``dalinorm parity`` holds the outputs to: TOLERANCES for images, the array
    table in levels of the data's range for arrays (uint8/uint16: the full range; float32:
    the compared arrays' own min-to-max, read with the reference loader)."""
    if not cfg.data.reads_arrays:
        if cfg.data.dtype != "uint8":  # 16-bit: one row per device and filter (float resize)
            return tolerance_for(device, cfg.data.dtype, cfg.eval.interpolation)
        return tolerance_for(device, cfg.loader.resize, cfg.eval.interpolation)
    table = array_tolerance_for(device, cfg.data.dtype)
    if cfg.data.dtype != "float32":
        return table.in_levels(full_scale_of(cfg.data.dtype))
    from dalinorm.data.arrays import load_array

    arrays = [load_array(listing.files[i], data_format=cfg.data.format, layout=cfg.data.layout)
              for i in range(limit)]
    return table.in_levels(max(float(a.max()) for a in arrays) - min(float(a.min()) for a in arrays))


def _display_name(path: Path, cfg: Config) -> str:
    """The file relative to data.root when it lies under it (shorter, stable across machines)."""
    try:
        return Path(path).relative_to(cfg.data.root).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- output
def format_report(report: ParityReport) -> str:
    """The per-channel table and the worst images, as ``dalinorm parity`` prints them."""
    tol = report.tolerance
    lines = [
        f"parity, split {report.split}: {report.num_images} images, DALI decoding on "
        f"{report.device}, {report.dtype} {report.layout}, normalization {report.normalization}",
        f"{'channel':<8}{'max_abs':>10}{'mean_abs':>11}{'max_levels':>12}{'mean_levels':>13}",
    ]
    names = channel_names(len(report.max_abs))
    for name, mx, mn, lmx, lmn in zip(names, report.max_abs, report.mean_abs,
                                      report.max_levels, report.mean_levels):
        lines.append(f"{name:<8}{mx:>10.5f}{mn:>11.2e}{lmx:>12.3f}{lmn:>13.5f}")
    if tol.exact:
        lines.append(f"tolerance ({tol.why}): max <= {tol.max_abs(report.dtype):g} normalized "
                     "(0 levels)")
    else:
        lines.append(f"tolerance ({tol.why}{', PROVISIONAL' if tol.provisional else ''}): "
                     f"max <= {tol.max_levels:g} levels, mean <= {tol.mean_levels:g} level")
    if report.shape_mismatches:
        lines.append(f"shape mismatches ({len(report.shape_mismatches)}): "
                     + ", ".join(report.shape_mismatches[:10]))
    lines.append("worst images:")
    for d in report.worst:
        if d.shapes_match:
            lines.append(f"  {d.file}: max {d.max_levels:.3f} levels, mean {d.mean_levels:.5f}")
        else:
            lines.append(f"  {d.file}: shape {list(d.shape_dali)} vs {list(d.shape_reference)}")
    failures = report.failures()
    lines.append("result: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return "\n".join(lines)


def write_report(path: Path, report: ParityReport) -> None:
    """The report as JSON, written atomically (a reader sees the old file or the new one)."""
    from dalinorm.atomic import write_atomically

    def plain(value: Any) -> Any:
        # JSON has no infinity: an image whose shapes differ has no level difference (null)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return str(value) if isinstance(value, Path) else value

    text = json.dumps(plain(report.to_dict()), indent=2, allow_nan=False)
    write_atomically(Path(path), (text + "\n").encode("utf-8"))
