"""Pillow's 8-bit bilinear and bicubic resize, exactly, as a numba-compiled DALI operator (CPU).

torchvision's ``RandomResizedCrop`` and ``Resize`` (antialias) on PIL images call
``Image.resize(..., BILINEAR)``, which Pillow computes in fixed point (``Resample.c``): per
output pixel a triangle filter as wide as the scale when shrinking, weights normalized over
the taps that fall inside the image (so edge pixels are renormalized, not clamped), rounded
to 22-bit integers, two 1-D passes each rounded to uint8. This module ports that arithmetic,
so the CPU graphs produce PIL's bytes: no residual at all, edges included (DALI's own resize
repeats the edge pixel and rounds in float: up to 14 levels at the window's border, ≈0.002
level mean inside; docs/PARITY.md). It is also cheaper than two DALI resize passes on the
CPU: 0.11 ms per ImageNet-sized train crop on one core (0.72 before the horizontal pass ran as
a vertical pass of the transposed image; docs/PERFORMANCE.md has the whole breakdown).

Pass order: Pillow up to 12 always resizes horizontally first; Pillow 13 resizes vertically
first when the height shrinks by more than twice what the width does. The installed
Pillow's rule is used, so the reference and the graph agree (tested against the installed
Pillow on crops of both kinds).

One operator covers both recipes: the whole input resized to ``out_h × out_w`` (train: the
random crop was decoded already), or only an ``out_h × out_w`` window at (top, left) of the
input resized to (full_h, full_w) (eval: resize + center crop, only the crop computed; each
output pixel depends on its own taps only, so the window equals the full resize, cropped).
Optionally the operator also normalizes and mirrors into float32 (what
``crop_mirror_normalize`` would do next), which saves a pass over the output.

Bicubic (``Image.resize(..., BICUBIC)``, what torchvision's ``InterpolationMode.BICUBIC`` asks
of PIL) is the same scheme with another filter: Keys' cubic with a = -0.5 and support 2
(widened by the scale when shrinking, like the triangle), up to 4·scale + 1 taps. Its negative
lobes make sums overshoot [0, 255] at edges, so each pass's clip to uint8 (Pillow's ``clip8``)
decides those pixels; the intermediate row between the passes is clipped too.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from dalinorm.config import INTERPOLATIONS
from dalinorm.pipelines.train_size import extent

__all__ = ["PILLOW_VERTICAL_FIRST", "is_cubic", "normalize_into", "pil_resize_numba", "resample_into",
           "resample_kernel", "sized_output_setup"]

_BITS = 22  # Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2
_HALF = 1 << (_BITS - 1)

_CUBIC_A = -0.5  # Pillow's bicubic (torchvision's tensor path uses -0.75, as PyTorch does: not this one)


def _pillow_vertical_first() -> bool:
    from PIL import __version__

    return int(__version__.split(".")[0]) >= 13


PILLOW_VERTICAL_FIRST = _pillow_vertical_first()


_jit = njit(cache=True, nogil=True)


@_jit
def _filter(t, cubic):  # pragma: no cover - compiled by numba
    """Pillow's ``bilinear_filter`` or ``bicubic_filter`` at t >= 0, the same operations in
    the same order (double precision), so the weights round to the same integers."""
    if not cubic:
        return 1.0 - t if t < 1.0 else 0.0
    if t < 1.0:
        return ((_CUBIC_A + 2.0) * t - (_CUBIC_A + 3.0)) * t * t + 1
    if t < 2.0:
        return (((t - 5) * t + 8) * t - 4) * _CUBIC_A
    return 0.0


@_jit
def _coefficients(in_size, out_size, cubic):  # pragma: no cover - compiled by numba
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for the bilinear or bicubic
    filter: int32 weights [out, taps] and (first input index, tap count) [out, 2]."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    # the filter's support (1 or 2), widened by the scale when shrinking
    support = (2.0 if cubic else 1.0) * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    weights = np.zeros((out_size, taps), np.int32)
    bounds = np.zeros((out_size, 2), np.int32)
    w = np.zeros(taps, np.float64)
    inv = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)  # int() truncates toward 0 as C's (int)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        total = 0.0
        for x in range(xmax):
            w[x] = _filter(abs((x + xmin - center + 0.5) * inv), cubic)
            total += w[x]
        for x in range(xmax):
            v = w[x] / total if total != 0.0 else w[x]
            weights[xx, x] = int(-0.5 + v * (1 << _BITS)) if v < 0 else int(0.5 + v * (1 << _BITS))
        bounds[xx, 0] = xmin
        bounds[xx, 1] = xmax
    return weights, bounds


@_jit
def _clip8(value):  # pragma: no cover - compiled by numba
    """Pillow's ``clip8``: the fixed-point sum to uint8, saturating (an arithmetic shift, so a
    negative sum, which bicubic's lobes produce, clips to 0)."""
    v = value >> _BITS
    return 255 if v > 255 else (0 if v < 0 else v)


@_jit
def _horizontal_scalar(dst, src, weights, bounds, shift):  # pragma: no cover - compiled by numba
    """dst [H, ow, C] ← src [H, w, C]; tap indices are ``bounds[:, 0] - shift`` in src."""
    rows, out_w, channels = dst.shape
    for y in range(rows):
        for xx in range(out_w):
            first = bounds[xx, 0] - shift
            for c in range(channels):
                acc = np.int32(_HALF)
                for x in range(bounds[xx, 1]):
                    acc += np.int32(np.int32(src[y, first + x, c]) * weights[xx, x])
                dst[y, xx, c] = _clip8(acc)


# The horizontal pass of RGB runs as the vertical pass of the transposed image (whole rows:
# it vectorizes), so the image is transposed in and the result back out. numba's loops move
# one pixel per step (≈1.5 ns each on 2026-12-01); this intrinsic moves an 8 × 8 block of RGB
# pixels in registers (each row's 24 bytes spread to 8 words, three rounds of shuffles, the
# words squeezed back to 24 bytes: LLVM's shufflevector), which took the two transposes of a
# train crop from 0.12 + 0.07 to about 0.03 + 0.03 ms. Bytes are only moved, never computed on.
_I8, _I32 = ir.IntType(8), ir.IntType(32)
_WORDS8 = ir.VectorType(_I32, 8)
_BYTES24 = ir.VectorType(_I8, 24)


def _lanes(order):
    return ir.Constant(ir.VectorType(_I32, len(order)), list(order))


def _transpose8(builder, rows):
    """8 vectors of 8 words (rows) → their 8 columns: interleave words, then pairs of words,
    then halves."""
    shuffle = builder.shuffle_vector
    lo32, hi32 = _lanes([0, 8, 1, 9, 4, 12, 5, 13]), _lanes([2, 10, 3, 11, 6, 14, 7, 15])
    lo64, hi64 = _lanes([0, 1, 8, 9, 4, 5, 12, 13]), _lanes([2, 3, 10, 11, 6, 7, 14, 15])
    lo128, hi128 = _lanes([0, 1, 2, 3, 8, 9, 10, 11]), _lanes([4, 5, 6, 7, 12, 13, 14, 15])
    a = []
    for k in range(0, 8, 2):
        a += [shuffle(rows[k], rows[k + 1], lo32), shuffle(rows[k], rows[k + 1], hi32)]
    b = []
    for k in (0, 1, 4, 5):
        b += [shuffle(a[k], a[k + 2], lo64), shuffle(a[k], a[k + 2], hi64)]
    return ([shuffle(b[j], b[j + 4], lo128) for j in range(4)]
            + [shuffle(b[j], b[j + 4], hi128) for j in range(4)])


@intrinsic
def _transpose_block(typingctx, src, src_at, src_stride, dst, dst_at, dst_stride):
    """8 rows of 8 RGB pixels (1-D uint8 ``src``, row i at byte src_at + i·src_stride) → the
    8 columns as rows of 8 RGB pixels (1-D uint8 ``dst``, column j at byte dst_at + j·dst_stride)."""
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.uint8
               for a in (src, dst)):
        return None
    sig = types.void(src, types.intp, types.intp, dst, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        def address(array, at, stride, k):
            offset = builder.add(at, builder.mul(stride, ir.Constant(at.type, k)))
            data = context.make_array(signature.args[array])(context, builder, args[array]).data
            return builder.bitcast(builder.gep(data, [offset]), _BYTES24.as_pointer())

        zero = ir.Constant(_BYTES24, None)
        spread = _lanes([24 if k % 4 == 3 else 3 * (k // 4) + k % 4 for k in range(32)])  # RGB→RGB0
        squeeze = _lanes([4 * (k // 3) + k % 3 for k in range(24)])  # RGB0→RGB
        rows = []
        for i in range(8):
            pixels = builder.load(address(0, args[1], args[2], i), align=1)
            rows.append(builder.bitcast(builder.shuffle_vector(pixels, zero, spread), _WORDS8))
        for j, column in enumerate(_transpose8(builder, rows)):
            as_bytes = builder.bitcast(column, ir.VectorType(_I8, 32))
            builder.store(builder.shuffle_vector(as_bytes, as_bytes, squeeze),
                          address(3, args[4], args[5], j), align=1)
        return context.get_dummy_value()

    return sig, codegen


@_jit
def _transpose_rgb(dst, src, rows, cols, src_at, src_stride, dst_stride):  # pragma: no cover
    """RGB pixel x of row y (y < rows, x < cols) at byte src_at + y·src_stride + 3x of 1-D
    ``src`` → pixel y of row x at byte x·dst_stride + 3y of 1-D ``dst``; 8 × 8 blocks, the
    strips left over (under 8 wide) one pixel at a time."""
    cb, rb = cols - cols % 8, rows - rows % 8
    for y0 in range(0, rb, 8):
        for x0 in range(0, cb, 8):
            _transpose_block(src, src_at + y0 * src_stride + 3 * x0, src_stride, dst,
                             x0 * dst_stride + 3 * y0, dst_stride)
    for y in range(rows):
        for x in range(cb if y < rb else 0, cols):
            p, q = src_at + y * src_stride + 3 * x, x * dst_stride + 3 * y
            dst[q], dst[q + 1], dst[q + 2] = src[p], src[p + 1], src[p + 2]


@_jit
def _horizontal(dst, src, weights, bounds, shift):  # pragma: no cover - compiled by numba
    """dst [H, ow, C] ← src [H, w, C] (C-contiguous); tap indices are ``bounds[:, 0] - shift``.

    RGB is resampled as the vertical pass of the transposed image: transpose to [w, H] RGB
    pixels (8 × 8 blocks: :func:`_transpose_block`), run :func:`_vertical` (whole rows: it
    vectorizes) and transpose back. The sums are the same integers in another order, so the
    bytes are Pillow's; on 2026-12-01 this took a train crop's resize from 0.72 to 0.22 ms (one
    core), the scalar loop over taps per pixel and channel being most of it, and the block
    transposes (of 3-byte pixels, no padding byte) from 0.22 to 0.11 ms.
    """
    rows, out_w, channels = dst.shape
    if channels != 3:
        _horizontal_scalar(dst, src, weights, bounds, shift)
        return
    w = src.shape[1]
    # only the columns the taps reach (an eval window needs about 2/3 of the image's width)
    c0, c1 = bounds[0, 0] - shift, bounds[0, 0] - shift
    for i in range(out_w):
        c0 = min(c0, bounds[i, 0] - shift)
        c1 = max(c1, bounds[i, 0] - shift + bounds[i, 1])
    cols = c1 - c0
    transposed = np.empty((cols, rows, 3), np.uint8)
    _transpose_rgb(transposed.reshape(cols * rows * 3), src.reshape(rows * w * 3), rows, cols,
                   3 * c0, w * 3, rows * 3)
    resized = np.empty((out_w, rows, 3), np.uint8)
    _vertical(resized, transposed, weights, bounds, shift + c0)
    _transpose_rgb(dst.reshape(rows * out_w * 3), resized.reshape(out_w * rows * 3), out_w, rows,
                   0, rows * 3, out_w * 3)


@_jit
def _vertical(dst, src, weights, bounds, shift):  # pragma: no cover - compiled by numba
    """dst [oh, W, C] ← src [h, W, C] (both C-contiguous); whole rows at a time (vectorizes),
    two taps per pass over the accumulator row."""
    out_h = dst.shape[0]
    width = dst.shape[1] * dst.shape[2]
    flat_src = src.reshape(src.shape[0], width)
    flat_dst = dst.reshape(out_h, width)
    acc = np.empty(width, np.int32)
    for yy in range(out_h):
        first = bounds[yy, 0] - shift
        taps = bounds[yy, 1]
        k0 = weights[yy, 0]
        row0 = flat_src[first]
        for i in range(width):
            acc[i] = np.int32(_HALF) + np.int32(np.int32(row0[i]) * k0)
        y = 1
        while y + 1 < taps:
            ka, kb = weights[yy, y], weights[yy, y + 1]
            row_a, row_b = flat_src[first + y], flat_src[first + y + 1]
            for i in range(width):
                acc[i] += np.int32(np.int32(row_a[i]) * ka) + np.int32(np.int32(row_b[i]) * kb)
            y += 2
        if y < taps:
            ka = weights[yy, y]
            row_a = flat_src[first + y]
            for i in range(width):
                acc[i] += np.int32(np.int32(row_a[i]) * ka)
        for i in range(width):
            flat_dst[yy, i] = _clip8(acc[i])


@_jit
def _resample_into(out, img, full_h, full_w, top, left, vertical_rule, cubic):  # pragma: no cover
    """out [oh, ow, C] ← the (top, left) window of ``img`` resized to full_h × full_w
    (bicubic if ``cubic``, else bilinear)."""
    h, w, channels = img.shape
    oh, ow = out.shape[0], out.shape[1]
    need_h = full_w != w
    need_v = full_h != h
    if not need_h and not need_v:
        out[:, :, :] = img[top:top + oh, left:left + ow, :]
        return
    if need_h:
        kx, bx = _coefficients(w, full_w, cubic)
        kx, bx = kx[left:left + ow], bx[left:left + ow]
    if need_v:
        ky, by = _coefficients(h, full_h, cubic)
        ky, by = ky[top:top + oh], by[top:top + oh]
    if not need_v:
        _horizontal(out, img[top:top + oh], kx, bx, 0)
        return
    if not need_h:
        _vertical(out, np.ascontiguousarray(img[:, left:left + ow, :]), ky, by, 0)
        return
    if vertical_rule and h - full_h > 0 and h - full_h > 2 * (w - full_w):
        c0 = bx[0, 0]
        c1 = c0
        for i in range(ow):
            c1 = max(c1, bx[i, 0] + bx[i, 1])
        tmp = np.empty((oh, c1 - c0, channels), np.uint8)
        _vertical(tmp, np.ascontiguousarray(img[:, c0:c1, :]), ky, by, 0)
        _horizontal(out, tmp, kx, bx, c0)
    else:
        r0 = by[0, 0]
        r1 = r0
        for i in range(oh):
            r1 = max(r1, by[i, 0] + by[i, 1])
        tmp = np.empty((r1 - r0, ow, channels), np.uint8)
        _horizontal(tmp, img[r0:r1], kx, bx, 0)
        _vertical(out, tmp, ky, by, r0)


@_jit
def _normalize_into(out, res, mirror, mean, inv_std, low, high, chw):  # pragma: no cover
    """out float32 (CHW or HWC) ← (clamp(res, low, high) - mean) · inv_std, flipped left-right
    if ``mirror`` (low/high per channel; ±3e38 when there is no clip: a no-op).
    CHW is written plane by plane, row by row (contiguous stores: 0.16 → 0.09 ms per 224²
    image); the arithmetic per value is the same either way."""
    h, w, channels = res.shape
    if chw:
        for c in range(channels):
            m, s, lo, hi = mean[c], inv_std[c], low[c], high[c]
            for y in range(h):
                row, plane_row = res[y], out[c, y]
                if mirror:
                    for x in range(w):
                        plane_row[x] = (min(max(np.float32(row[w - 1 - x, c]), lo), hi) - m) * s
                else:
                    for x in range(w):
                        plane_row[x] = (min(max(np.float32(row[x, c]), lo), hi) - m) * s
        return
    for y in range(h):
        for x in range(w):
            xs = w - 1 - x if mirror else x
            for c in range(channels):
                v = min(max(np.float32(res[y, xs, c]), low[c]), high[c])
                out[y, x, c] = (v - mean[c]) * inv_std[c]


# the resize and normalize steps for other numba operators (the CPU policy and train-step
# operators of augment_cpu)
normalize_into = _normalize_into
resample_kernel = _resample_into


def is_cubic(interpolation: str) -> bool:
    """Whether ``interpolation`` (a config value) is bicubic; a ValueError for an unknown one."""
    return _is_cubic(interpolation)


def _is_cubic(interpolation: str) -> bool:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {'|'.join(INTERPOLATIONS)}, "
                         f"got {interpolation!r}")
    return interpolation == "bicubic"


def resample_into(out: np.ndarray, img: np.ndarray, full_h: int | None = None,
                  full_w: int | None = None, top: int = 0, left: int = 0,
                  interpolation: str = "bilinear") -> None:
    """Host version (for tests and tools): ``out`` ← PIL's bilinear (or bicubic) resize of
    uint8 HWC ``img`` to (full_h, full_w) (default: ``out``'s size), window at (top, left)."""
    full_h = out.shape[0] if full_h is None else full_h
    full_w = out.shape[1] if full_w is None else full_w
    _resample_into(out, np.ascontiguousarray(img), full_h, full_w, top, left, PILLOW_VERTICAL_FIRST,
                   _is_cubic(interpolation))


# Compiled DALI operators, one per kind. DALI's NumbaFunction compiles its run and setup
# functions when the operator object is created (seconds each), not when it is called, so one
# object per kind serves every pipeline of the process. What changes from one config to the
# next (the output size, the window, mean and std) travels as inputs, never as compiled
# constants: the output size as the shape of a zero-volume input (a setup function sees only
# shapes), the window as int32 (full_h, full_w, top, left), mean and 1/std as float32 inputs.
# Kinds: the uint8 resize, and resize + normalize per layout, each per filter.
_OPERATORS: dict = {}


def numba_operator(key, make):
    """The ``NumbaFunction`` operator ``make()`` creates, created once per ``key`` (a kind)."""
    if key not in _OPERATORS:
        _OPERATORS[key] = make()
    return _OPERATORS[key]


def compiled_operator_kinds() -> tuple:
    """The operator kinds compiled so far in this process (each cost one compilation)."""
    return tuple(_OPERATORS)


def pil_resize_numba(images, *, out_h: int, out_w: int, geometry=None, normalize=None,
                     interpolation: str = "bilinear"):
    """The DALI node: uint8 HWC ``images`` → PIL's bilinear (or ``"bicubic"``) resize, exactly.

    ``geometry``: None to resize the whole image to out_h × out_w, or an int32 [4] node
    (full_h, full_w, top, left) per sample for the window of a larger resize. ``normalize``:
    None for uint8 HWC output, or (mean, std in 0–255 units, layout "CHW"|"HWC", mirror node
    or None[, low, high]) for float32 output, as ``crop_mirror_normalize`` would give it (a
    window is never mirrored: eval), each value first clamped to [low, high] per channel when
    those are given (``normalize.mode: percentile``).
    """
    from nvidia.dali import fn, types

    cubic = _is_cubic(interpolation)
    if normalize is not None and geometry is not None and normalize[3] is not None:
        raise ValueError("pil_resize_numba: a window (eval) is not mirrored")
    # the output size as a shape: DALI 2.4's NumbaFunction hands its setup function the
    # shapes of as many inputs as it has outputs, hence a second (empty) output per kind
    # (out_h, out_w: ints, or int32 DataNodes fed at run time: train.size_schedule)
    size = fn.zeros(shape=extent(out_h, out_w, 0), dtype=types.UINT8)
    if geometry is None and isinstance(out_h, int) and isinstance(out_w, int):
        # the whole image: the window of a resize to out_h × out_w at (0, 0)
        geometry = types.Constant(np.array([out_h, out_w, 0, 0], np.int32), device="cpu")
    elif geometry is None:
        geometry = extent(out_h, out_w, 0, 0, dtype=types.INT32)
    if normalize is None:
        op = numba_operator(("resize", interpolation, PILLOW_VERTICAL_FIRST),
                            lambda: _resize_operator(cubic))
        return op(images, size, geometry)[0]
    mean, std, layout, mirror, *clip = normalize
    low, high = clip if clip and clip[0] is not None else ([-3e38] * len(mean), [3e38] * len(mean))
    mirror = (types.Constant(np.zeros(1, np.int32), device="cpu") if mirror is None
              else fn.reshape(fn.cast(mirror, dtype=types.INT32), shape=[1]))
    # one [4, C] input (NumbaFunction takes at most 6 inputs): mean, 1/std, low, high
    params = np.stack([np.asarray(mean, np.float64), 1.0 / np.asarray(std, np.float64),
                       np.asarray(low, np.float64), np.asarray(high, np.float64)])
    params = types.Constant(params.astype(np.float32), device="cpu")
    op = numba_operator(("resize+normalize", layout, interpolation, PILLOW_VERTICAL_FIRST),
                        lambda: _normalizing_operator(layout == "CHW", cubic))
    return op(images, size, geometry, mirror, params)[0]


def _resize_operator(cubic: bool):
    from nvidia.dali import types
    from nvidia.dali.plugin.numba import NumbaFunction

    resample, vertical_rule = _resample_into, PILLOW_VERTICAL_FIRST

    def setup(outs, ins):  # pragma: no cover - compiled by numba
        for i in range(len(ins[0])):
            outs[0][i][0] = ins[1][i][0]
            outs[0][i][1] = ins[1][i][1]
            outs[0][i][2] = ins[0][i][2]
            outs[1][i][0] = 0

    def run(out0, out1, in0, in1, in2):  # pragma: no cover - compiled by numba
        resample(out0, in0, in2[0], in2[1], in2[2], in2[3], vertical_rule, cubic)

    return NumbaFunction(run_fn=run, setup_fn=setup, out_types=[types.UINT8, types.UINT8],
                         in_types=[types.UINT8, types.UINT8, types.INT32], outs_ndim=[3, 1],
                         ins_ndim=[3, 3, 1], batch_processing=False)


def sized_output_setup(chw: bool, second: int):
    """A ``NumbaFunction`` setup for the operators that resize into a float32 image: output 0
    is (C, h, w) if ``chw`` else (h, w, C), with C from input 0's shape (the HWC image) and
    (h, w) from input 1's (the zero-volume size carrier), output 1 a vector of ``second``."""

    def setup(outs, ins):  # pragma: no cover - compiled by numba
        for i in range(len(ins[0])):
            if chw:
                outs[0][i][0] = ins[0][i][2]
                outs[0][i][1] = ins[1][i][0]
                outs[0][i][2] = ins[1][i][1]
            else:
                outs[0][i][0] = ins[1][i][0]
                outs[0][i][1] = ins[1][i][1]
                outs[0][i][2] = ins[0][i][2]
            outs[1][i][0] = second

    return setup


def _normalizing_operator(chw: bool, cubic: bool):
    """(image, size, window, mirror, [mean, 1/std, low, high]) → float32 CHW or HWC, in one
    pass (``cubic``: Pillow's bicubic filter, else its bilinear)."""
    from nvidia.dali import types
    from nvidia.dali.plugin.numba import NumbaFunction

    resample, normalize_into, vertical_rule = _resample_into, _normalize_into, PILLOW_VERTICAL_FIRST
    setup = sized_output_setup(chw, 0)

    def run(out0, out1, in0, in1, in2, in3, in4):  # pragma: no cover - compiled by numba
        res = np.empty((in1.shape[0], in1.shape[1], in0.shape[2]), np.uint8)
        resample(res, in0, in2[0], in2[1], in2[2], in2[3], vertical_rule, cubic)
        normalize_into(out0, res, in3[0] != 0, in4[0], in4[1], in4[2], in4[3], chw)

    return NumbaFunction(run_fn=run, setup_fn=setup, out_types=[types.FLOAT, types.UINT8],
                         in_types=[types.UINT8, types.UINT8, types.INT32, types.INT32,
                                   types.FLOAT],
                         outs_ndim=[3, 1], ins_ndim=[3, 3, 1, 1, 2], batch_processing=False)
