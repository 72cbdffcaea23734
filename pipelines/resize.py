"""Resizing in the graph the way torchvision does it: the size and crop anchor of its eval
recipe, and PIL's bilinear or bicubic resize (exact on the CPU, PIL's two passes with DALI's
resize on the GPU, or one fast 2-D DALI resize), as ``loader.resize`` selects and
``train.interpolation`` / ``eval.interpolation`` filter."""

from __future__ import annotations

from dalinorm.config import Config
from dalinorm.pipelines.specs import GraphSpec, import_dali
from dalinorm.pipelines.train_size import extent

__all__ = ["TIE_OFFSET", "dali_interp", "describe_interpolation", "eval_window", "exact_resize",
           "fast_resize", "float_resize", "pil_resize", "resize_images", "round_half_up",
           "torchvision_eval_geometry"]


# PIL rounds each resampling pass to uint8 half up (fixed point plus one half). DALI's cast
# rounds float to uint8 to nearest; adding this offset first breaks exact ties (x.5) upward as
# PIL does, whatever the device's rounding mode, and moves no value more than 1e-4 from a tie.
# The simple scales that produce ties (2:1, 3:2, 5:4, 3:1) are ones where DALI's float result
# is exact to < 4e-5 at 255, so a tie does not drift below the offset. Exact ties are common:
# a 2:1 downscale weighs pixels 1/8, 3/8, 3/8, 1/8, so one output in 8 lands on .5; without the
# offset the eval residual on such images was 0.054 uint8 level instead of 0.0025
# (docs/PARITY.md).
TIE_OFFSET = 1e-4


def round_half_up(images):
    """float → uint8, rounding halves up like PIL's fixed-point resampler (saturating)."""
    fn, types, _ = import_dali()
    return fn.cast(images + TIE_OFFSET, dtype=types.UINT8)


def dali_interp(interpolation: str):
    """DALI's filter for the config's ``interpolation``: linear, or cubic (DALI's cubic is
    Keys' a = -0.5 as PIL's; with ``antialias`` it is widened by the scale when shrinking,
    as PIL's is, but DALI's edges and float rounding stay; measured in docs/PARITY.md)."""
    _, types, _ = import_dali()
    return types.INTERP_CUBIC if interpolation == "bicubic" else types.INTERP_LINEAR


def describe_interpolation(cfg: Config) -> list[str]:
    """What train.interpolation and eval.interpolation do with this config's loader.resize
    (``dalinorm validate`` prints these lines as comments)."""
    how = {
        "pil": "on the CPU Pillow's own fixed-point arithmetic (bit-exact); on a GPU DALI's {dali} "
               "filter in PIL's two passes (close, measured)",
        "pil_dali": "DALI's {dali} filter in PIL's two passes, each rounded to uint8 (close, measured)",
        "fast": "one 2-D DALI {dali} resize (close, measured)",
    }[cfg.loader.resize]
    lines = []
    for key, value, what in (("train.interpolation", cfg.train.interpolation, "RandomResizedCrop"),
                             ("eval.interpolation", cfg.eval.interpolation, "Resize")):
        pil = "BICUBIC (Keys' cubic, a = -0.5)" if value == "bicubic" else "BILINEAR"
        dali = "cubic" if value == "bicubic" else "linear"
        lines.append(f"{key}: {value}: {what} as torchvision with PIL's {pil} on PIL images; "
                     f"loader.resize {cfg.loader.resize}: {how.format(dali=dali)}")
    return lines


def exact_resize(cfg: Config, spec: GraphSpec) -> bool:
    """``loader.resize: pil`` on the CPU for 8-bit data: Pillow's arithmetic itself (a numba
    operator, :mod:`dalinorm.pipelines.resample`; Pillow's "L" and "RGB" modes share it). On
    the GPU, ``pil`` is :func:`pil_resize`; 16-bit data take :func:`float_resize`."""
    return cfg.loader.resize == "pil" and spec.device_id is None and cfg.data.dtype == "uint8"


def resize_images(cfg: Config, spec: GraphSpec, images, normalize=None,
                  interpolation: str = "bilinear", **window):
    """The resize ``loader.resize`` selects: ``pil`` (exact on the CPU, :func:`pil_resize` on
    the GPU), ``pil_dali`` (:func:`pil_resize` on both) or ``fast`` (:func:`fast_resize`),
    with the recipe's filter (``interpolation``: bilinear or bicubic).
    ``normalize`` (exact CPU resize only): normalize in the same pass, see
    :func:`~dalinorm.pipelines.resample.pil_resize_numba`."""
    if exact_resize(cfg, spec):
        from dalinorm.pipelines.resample import pil_resize_numba

        fn, types, _ = import_dali()
        geometry = None
        if window.get("full_h") is not None:
            geometry = fn.cast(fn.stack(window["full_h"], window["full_w"], window["top"],
                                        window["left"]), dtype=types.INT32)
        return pil_resize_numba(images, out_h=window["out_h"], out_w=window["out_w"],
                                geometry=geometry, normalize=normalize, interpolation=interpolation)
    if normalize is not None:
        raise ValueError("resize_images: normalize is for the exact CPU resize only")
    if cfg.data.dtype == "uint16":
        return float_resize(images, interpolation=interpolation, **window)
    return (fast_resize if cfg.loader.resize == "fast" else pil_resize)(
        images, interpolation=interpolation, **window)


def float_resize(images, **window):
    """16-bit images: :func:`fast_resize` kept in float32 (input levels, 0–65535), never
    rounded. The reference it is held to is torchvision's antialiased ``Resize`` (the config's
    filter) on the float32 image (``ToDtype(float32, scale=True)`` first): Pillow has no 16-bit
    RGB mode, and torchvision's resize of a uint16 tensor truncates its float result (0.29's
    ``resize_image`` rounds int8–int64 only), so both would add a rounding this path avoids.
    Bounds: ``TOLERANCES`` in :mod:`dalinorm.commands.parity` (measured with bilinear)."""
    return fast_resize(images, float_output=True, **window)


def fast_resize(images, *, out_h: int, out_w: int, full_h=None, full_w=None, top=None, left=None,
                interpolation: str = "bilinear", float_output: bool = False):
    """One 2-D antialiased DALI resize to uint8, with :func:`pil_resize`'s arguments:
    about half the CPU cost of the PIL-order passes, ≈0.17 uint8 level from PIL on average
    (bilinear; bicubic: docs/PARITY.md). ``float_output``: float32 in input levels instead
    (:func:`float_resize`)."""
    fn, types, _ = import_dali()
    common = dict(interp_type=dali_interp(interpolation), antialias=True,
                  size=extent(out_h, out_w, dtype=types.FLOAT))
    if float_output:
        common["dtype"] = types.FLOAT
    if full_h is None:
        return fn.resize(images, **common)
    return fn.resize(images, roi_relative=True,
                     roi_start=fn.stack(top / full_h, left / full_w),
                     roi_end=fn.stack((top + out_h) / full_h, (left + out_w) / full_w), **common)


def pil_resize(images, *, out_h: int, out_w: int, full_h=None, full_w=None, top=None, left=None,
               interpolation: str = "bilinear"):
    """Resize uint8 HWC images the way PIL's ``Image.resize(..., BILINEAR)`` does, which is what
    torchvision's ``Resize``/``RandomResizedCrop`` (antialias) do to PIL images (``BICUBIC``
    with ``interpolation="bicubic"``: DALI's cubic filter in the same passes).

    PIL resamples in two passes, horizontal then vertical, each with a triangle filter as wide
    as the scale when shrinking, and rounds to uint8 after each pass. One 2-D DALI resize keeps
    the intermediate in float and picks its own pass order: 0.166 uint8 level mean difference
    on ImageNet-like photos. Two 1-D resizes in PIL's order, each rounded half up, bring it to
    0.0005 (docs/PARITY.md). Left over: where a shrinking filter reaches past the input's
    edge, PIL renormalizes the taps inside while DALI repeats the edge pixel, so the outermost
    output row and column can differ by up to 1/8 of the range (train windows; eval only when
    crop == resize_shorter).

    Without ``full_*`` the whole image is resized to ``out_h × out_w``. With them, the output
    is the ``out_h × out_w`` window at (``top``, ``left``) of the image resized to
    ``full_h × full_w`` (per-sample DataNodes allowed): the resize + center crop of eval, but
    only the window is computed. DALI's resize reads pixels outside the region of interest,
    so the window's values equal those of the full resize, cropped.
    """
    fn, types, _ = import_dali()
    common = dict(
        interp_type=dali_interp(interpolation),
        antialias=True,
        mode="stretch",  # an extent of 0 in ``size`` stays as it is
        dtype=types.FLOAT,
    )
    if full_h is None:
        # out_h, out_w: ints, or int32 DataNodes fed at run time (train.size_schedule)
        columns = fn.resize(images, size=extent(0, out_w, dtype=types.FLOAT), **common)
        return round_half_up(fn.resize(round_half_up(columns),
                                       size=extent(out_h, 0, dtype=types.FLOAT), **common))
    x0, x1 = left / full_w, (left + out_w) / full_w
    y0, y1 = top / full_h, (top + out_h) / full_h
    columns = fn.resize(images, size=[0, out_w], roi_relative=True,
                        roi_start=fn.stack(0.0, x0), roi_end=fn.stack(1.0, x1), **common)
    rows = fn.resize(round_half_up(columns), size=[out_h, 0], roi_relative=True,
                     roi_start=fn.stack(y0, 0.0), roi_end=fn.stack(y1, 1.0), **common)
    return round_half_up(rows)


def torchvision_eval_geometry(shape, resize_shorter: int, crop: int):
    """Per-sample resize size and crop anchor (float DataNodes: new_h, new_w, top, left),
    computed the way torchvision computes them.

    ``shape`` is the encoded image's (H, W, C). torchvision's ``Resize(S)`` sets the short side
    to S and *truncates* the long side, ``int(S * long / short)``; DALI's own ``resize_shorter``
    rounds it. ``CenterCrop`` puts the anchor at ``round((size - crop) / 2)`` with Python's
    half-to-even rounding; DALI's ``crop_pos_x=0.5`` rounds half up. Integer arithmetic here
    reproduces torchvision exactly; the results are small integers, exact in float32.
    """
    fn, types, _ = import_dali()
    h = shape[0]
    w = shape[1]
    landscape = fn.cast(h <= w, dtype=types.INT32)  # short side is H
    portrait = 1 - landscape
    s = resize_shorter
    new_h = landscape * s + portrait * ((s * h) // w)
    new_w = portrait * s + landscape * ((s * w) // h)

    def anchor(extent):
        d = extent - crop
        half = d // 2
        odd = d - 2 * half
        return half + odd * (half - 2 * (half // 2))  # round half to even

    return tuple(fn.cast(v, dtype=types.FLOAT)
                 for v in (new_h, new_w, anchor(new_h), anchor(new_w)))


def eval_window(jpegs, images, cfg: Config, spec: GraphSpec, exif: bool, normalize=None):
    """torchvision's Resize(resize_shorter) + CenterCrop(crop): the crop×crop uint8 window
    (float32, normalized, with ``normalize``: see :func:`resize_images`)."""
    fn, types, _ = import_dali()
    shape = fn.peek_image_shape(jpegs, adjust_orientation=exif, dtype=types.INT32)
    new_h, new_w, top, left = torchvision_eval_geometry(
        shape, cfg.eval.resize_shorter, cfg.eval.crop
    )
    return resize_images(cfg, spec, images, normalize, interpolation=cfg.eval.interpolation,
                         out_h=cfg.eval.crop, out_w=cfg.eval.crop,
                         full_h=new_h, full_w=new_w, top=top, left=left)
