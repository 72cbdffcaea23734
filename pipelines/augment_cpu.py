"""The CPU's exact path of pipelines/augment.py: numba-compiled DALI operators.

On DALI's CPU backend every stock operator is a pass over the batch with its own overhead, and
torchvision's augmentations are many small ones (RandomErasing's box is ≈30 scalar operators per
sample; a policy's blend is five image-sized passes). Here each augmentation is one operator, and
with a policy the whole train step is one (:func:`train_step_numba`: resize, flip, policy,
normalize, erase):
the random draws still come from DALI's random operators (so seeds, checkpoints and resume hold
as on the GPU path), and the operator computes what torchvision computes from them.

RandomErasing: :func:`erase_numba` takes the normalized image and the draws of
:func:`dalinorm.pipelines.augment.erase_draws` and computes torchvision's
``RandomErasing.get_params`` box with the same float32 arithmetic as the stock-operator path
(``augment.erase_params``), so the same draws give the same boxes, then fills it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dalinorm.pipelines.resample import (PILLOW_VERTICAL_FIRST, is_cubic, normalize_into,
                                         numba_operator, resample_kernel, sized_output_setup)

__all__ = ["OP_CODES", "erase_numba", "lin_words", "policy_numba", "train_step_numba", "warp_linear"]

_jit = njit(cache=True, nogil=True)

_TRIES = 10


@_jit
def _erase_box(H, W, area_u, aspect, u):  # pragma: no cover - compiled by numba
    """(top, left, h, w) as float32, every step in float32 in the stock path's order:
    area = (H·W)·U, h = floor(√(area·aspect) + 0.5), w = floor(√(area/aspect) + 0.5), the first
    attempt with h < H and w < W; u = (coin, top, left) uniforms in [0, 1), p in u[3]."""
    f = np.float32
    Hf, Wf = f(H), f(W)
    first = _TRIES
    eh, ew = f(0.0), f(0.0)
    for k in range(_TRIES):
        area = f(f(Hf * Wf) * area_u[k])
        h = np.floor(f(np.sqrt(f(area * aspect[k])) + f(0.5)))
        w = np.floor(f(np.sqrt(f(area / aspect[k])) + f(0.5)))
        if h < Hf and w < Wf:
            first = k
            eh, ew = f(h), f(w)
            break
    if not (u[0] < u[3] and first < _TRIES):
        eh, ew = f(0.0), f(0.0)
    top = min(np.floor(f(u[1] * f(f(Hf - eh) + f(1.0)))), f(Hf - eh))
    left = min(np.floor(f(u[2] * f(f(Wf - ew) + f(1.0)))), f(Wf - ew))
    return f(top), f(left), eh, ew


@_jit
def _fill_box(out, top, left, h, w, value, chw):  # pragma: no cover - compiled by numba
    t, l, eh, ew = int(top), int(left), int(h), int(w)
    if chw:
        for c in range(out.shape[0]):
            out[c, t:t + eh, l:l + ew] = value[c]
    else:
        for c in range(out.shape[2]):
            out[t:t + eh, l:l + ew, c] = value[c]


@_jit
def _erase_into(out, box, img, area_u, aspect, u, value, chw):  # pragma: no cover
    if chw:
        H, W = img.shape[1], img.shape[2]
    else:
        H, W = img.shape[0], img.shape[1]
    top, left, eh, ew = _erase_box(H, W, area_u, aspect, u)
    box[0], box[1], box[2], box[3] = top, left, eh, ew
    out[:] = img
    _fill_box(out, top, left, eh, ew, value, chw)


def _erase_operator(chw: bool):
    """(image, area draws [10], aspects [10], (coin, top, left, p), value [C]) →
    (erased image, box [4] = top, left, h, w)."""
    from nvidia.dali import types
    from nvidia.dali.plugin.numba import NumbaFunction

    erase_into = _erase_into

    def setup(outs, ins):  # pragma: no cover - compiled by numba
        for i in range(len(ins[0])):
            outs[0][i][0] = ins[0][i][0]
            outs[0][i][1] = ins[0][i][1]
            outs[0][i][2] = ins[0][i][2]
            outs[1][i][0] = 4

    def run(out0, out1, in0, in1, in2, in3, in4):  # pragma: no cover - compiled by numba
        erase_into(out0, out1, in0, in1, in2, in3, in4, chw)

    return NumbaFunction(run_fn=run, setup_fn=setup, out_types=[types.FLOAT, types.FLOAT],
                         in_types=[types.FLOAT, types.FLOAT, types.FLOAT, types.FLOAT, types.FLOAT],
                         outs_ndim=[3, 1], ins_ndim=[3, 1, 1, 1, 1], batch_processing=False)


def erase_numba(images, draws, probability: float, value, layout: str):
    """The DALI node: float32 ``images`` (``layout`` "CHW" or "HWC") with torchvision's
    RandomErasing box filled with ``value`` (one float per channel), and the box (top, left, h, w) as
    float32 [4]. ``draws``: (area uniforms [10], aspects [10], (coin, top, left) uniforms)."""
    from nvidia.dali import fn, types

    area_u, aspect, coin, top_u, left_u = draws
    u = fn.stack(coin, top_u, left_u, types.Constant(np.float32(probability), device="cpu"))
    value = types.Constant(np.array(value, np.float32), device="cpu")
    op = numba_operator(("erase", layout), lambda: _erase_operator(layout == "CHW"))
    out, box = op(images, area_u, aspect, u, value)
    return out, box


# --------------------------------------------------------------------------- the policies
# One operator applies a sample's drawn operations (TrivialAugmentWide's one, RandAugment's
# num_ops, AutoAugment's two stages) to the uint8 HWC image, each as Pillow computes it for
# torchvision's PIL path: the enhance blends in float32 truncated (Blend.c), SMOOTH rounded
# half up (Filter.c), ImageOps' luts (autocontrast in double, equalize in integers), and the
# warps as Geometry.c's bilinear affine (output pixel centres mapped in double, taps clipped to
# the image, truncated; fill 0 outside). Per stage the operator takes an operation code
# (OP_CODES), the parameter (augment.op_parameter's float32) and the linear part of the warp's
# inverse matrix (float64, computed in Python as torchvision and Pillow compute it,
# :func:`warp_linear`): the offsets, which depend on the image size, are computed here.

OP_CODES = {
    "Identity": 0, "ShearX": 1, "ShearY": 2, "TranslateX": 3, "TranslateY": 4, "Rotate": 5,
    "Brightness": 6, "Color": 7, "Contrast": 8, "Sharpness": 9, "Posterize": 10, "Solarize": 11,
    "AutoContrast": 12, "Equalize": 13, "Invert": 14,
    # translations by a fraction of the side (RandAugment, AutoAugment)
    "TranslateX@side": 15, "TranslateY@side": 16,
}


def warp_linear(op: str, param: float) -> tuple[float, float, float, float]:
    """(a, b, d, e) of the inverse affine matrix (a, b, c, d, e, f) that torchvision hands
    Pillow for ``op`` at ``param`` (Python doubles, the same calls): shears through
    ``_get_inverse_affine_matrix``, rotations through Pillow's ``Image.rotate`` (angle mod 360,
    cos and sin rounded to 15 digits); identity for the rest (translations included)."""
    import math

    if op in ("ShearX", "ShearY"):
        from torchvision.transforms.functional import _get_inverse_affine_matrix

        deg = math.degrees(math.atan(float(param)))
        shear = [deg, 0.0] if op == "ShearX" else [0.0, deg]
        m = _get_inverse_affine_matrix([0.0, 0.0], 0.0, [0.0, 0.0], 1.0, shear)
        return m[0], m[1], m[3], m[4]
    if op == "Rotate":
        angle = -math.radians(float(param) % 360.0)
        return (round(math.cos(angle), 15), round(math.sin(angle), 15),
                round(-math.sin(angle), 15), round(math.cos(angle), 15))
    return 1.0, 0.0, 0.0, 1.0


@_jit
def _blend_flat(out, deg, img, alpha, stride):  # pragma: no cover - compiled by numba
    """Pillow's ImagingBlend(deg, img, alpha) on flat uint8 arrays: float32
    deg + alpha·(img − deg), clipped to [0, 255], truncated. ``stride`` 1: ``deg`` a whole
    image, 0: a 1-element ``deg``, a flat value. One loop per
    stride (no division per element), so LLVM vectorizes it; the same float32 steps."""
    f = np.float32
    a = f(alpha)
    lo, hi = f(0.0), f(255.0)
    n = img.shape[0]
    if stride == 1:
        for i in range(n):
            d = f(deg[i])
            t = f(d + f(a * f(f(img[i]) - d)))
            out[i] = np.uint8(min(max(t, lo), hi))
    else:
        d = f(deg[0])
        for i in range(n):
            t = f(d + f(a * f(f(img[i]) - d)))
            out[i] = np.uint8(min(max(t, lo), hi))


@_jit
def _grey(img):  # pragma: no cover - compiled by numba
    """Pillow's RGB → L (Convert.c L24) of a flat RGB image: (19595·R + 38470·G + 7471·B +
    0x8000) >> 16 per pixel."""
    n = img.shape[0] // 3
    g = np.empty(n, np.uint8)
    for p in range(n):
        g[p] = (np.int32(img[3 * p]) * 19595 + np.int32(img[3 * p + 1]) * 38470
                + np.int32(img[3 * p + 2]) * 7471 + 32768) >> 16
    return g


@_jit
def _enhance(out, img, code, factor, H, W):  # pragma: no cover - compiled by numba
    """Brightness (a blend with black), Color (with the L image), Contrast (with a flat grey
    at int(mean of L + 0.5), ImageStat's sum / count in double), Sharpness (with SMOOTH), on
    flat RGB arrays."""
    if code == 6:
        _blend_flat(out, np.zeros(1, np.uint8), img, factor, 0)
    elif code == 7:  # _grey and _blend_flat(stride 3) fused: the same integer and float32 steps
        f = np.float32
        a = f(factor)
        lo, hi = f(0.0), f(255.0)
        for p in range(img.shape[0] // 3):
            r, g, b = img[3 * p], img[3 * p + 1], img[3 * p + 2]
            d = f(np.uint8((np.int32(r) * 19595 + np.int32(g) * 38470 + np.int32(b) * 7471
                            + 32768) >> 16))
            out[3 * p] = np.uint8(min(max(f(d + f(a * f(f(r) - d))), lo), hi))
            out[3 * p + 1] = np.uint8(min(max(f(d + f(a * f(f(g) - d))), lo), hi))
            out[3 * p + 2] = np.uint8(min(max(f(d + f(a * f(f(b) - d))), lo), hi))
    elif code == 8:
        g = _grey(img)
        s = np.int64(0)
        for p in range(g.shape[0]):
            s += g[p]
        pivot = np.full(1, int(float(s) / float(g.shape[0]) + 0.5), np.uint8)
        _blend_flat(out, pivot, img, factor, 0)
    else:  # SMOOTH (1 1 1 / 1 5 1 / 1 1 1) / 13, rounded half up, the 1-pixel border kept
        # one row at a time, the rows above and below as views indexed from 0 up (numba's
        # negative-index check then folds away and LLVM vectorizes the filter and the
        # blend); the border blended with itself
        row = 3 * W
        deg = np.empty(row, np.uint8)
        for y in range(H):
            o = y * row
            mid = img[o:o + row]
            if y == 0 or y == H - 1 or W < 3:
                _blend_flat(out[o:o + row], mid, mid, factor, 1)
                continue
            up = img[o - row:o]
            dn = img[o + row:o + 2 * row]
            deg[:3] = mid[:3]
            deg[row - 3:] = mid[row - 3:]
            for i in range(row - 6):  # the element i + 3
                s = (np.int32(up[i]) + np.int32(up[i + 3]) + np.int32(up[i + 6])
                     + np.int32(mid[i]) + 5 * np.int32(mid[i + 3]) + np.int32(mid[i + 6])
                     + np.int32(dn[i]) + np.int32(dn[i + 3]) + np.int32(dn[i + 6]))
                # float32 S/13 + 0.5 truncated: S/13 is never within 1/26 of a half, so the
                # integer round half up is the same
                deg[i + 3] = np.uint8((2 * s + 13) // 26)
            _blend_flat(out[o:o + row], deg, mid, factor, 1)


@_jit
def _lut_into(out, img, lut):  # pragma: no cover - compiled by numba
    """``lut`` [3, 256] per channel, flat RGB arrays."""
    for p in range(img.shape[0] // 3):
        out[3 * p] = lut[0, img[3 * p]]
        out[3 * p + 1] = lut[1, img[3 * p + 1]]
        out[3 * p + 2] = lut[2, img[3 * p + 2]]


@_jit
def _histogram(img, c):  # pragma: no cover - compiled by numba
    h = np.zeros(256, np.int64)
    for p in range(img.shape[0] // 3):
        h[img[3 * p + c]] += 1
    return h


@_jit
def _pointwise_lut(img, code, param):  # pragma: no cover - compiled by numba
    C = 3
    lut = np.empty((C, 256), np.uint8)
    for c in range(C):
        if code == 10:  # Posterize: keep the top int(bits) bits
            mask = ~((1 << (8 - int(param))) - 1) & 255
            for i in range(256):
                lut[c, i] = i & mask
        elif code == 11:  # Solarize: i if i < threshold else 255 − i
            for i in range(256):
                lut[c, i] = i if i < param else 255 - i
        elif code == 14:  # Invert
            for i in range(256):
                lut[c, i] = 255 - i
        elif code == 12:  # AutoContrast: ImageOps.autocontrast (cutoff 0), in double
            h = _histogram(img, c)
            lo = 0
            while lo < 255 and h[lo] == 0:
                lo += 1
            hi = 255
            while hi > 0 and h[hi] == 0:
                hi -= 1
            if hi <= lo:
                for i in range(256):
                    lut[c, i] = i
            else:
                scale = 255.0 / (hi - lo)
                offset = -lo * scale
                for i in range(256):
                    v = int(i * scale + offset)
                    lut[c, i] = 0 if v < 0 else (255 if v > 255 else v)
        else:  # Equalize: ImageOps.equalize, in integers
            h = _histogram(img, c)
            total, last, used = np.int64(0), np.int64(0), 0
            for i in range(256):
                if h[i]:
                    total += h[i]
                    last = h[i]
                    used += 1
            step = (total - last) // 255 if used > 1 else 0
            if step == 0:
                for i in range(256):
                    lut[c, i] = i
            else:
                n = step // 2
                for i in range(256):
                    # Image.point clips its lut to [0, 255] (the last entries can reach 256)
                    lut[c, i] = min(n // step, 255)
                    n += h[i]
    return lut


@_jit
def _shift_into(out, img, sx, sy):  # pragma: no cover - compiled by numba
    """out[y, x] = img[y + sy, x + sx] where that lies in the image, else 0 (the fill): row
    copies of the flat buffers."""
    H, W, C = img.shape
    dst = out.reshape(-1)
    src = img.reshape(-1)
    row = W * C
    # output columns [x_lo, x_hi) read input columns [x_lo + sx, x_hi + sx)
    x_lo = min(max(-sx, 0), W)
    x_hi = max(min(W - sx, W), x_lo)
    for y in range(H):
        o = y * row
        ys = y + sy
        if ys < 0 or ys >= H:
            dst[o:o + row] = 0
            continue
        s = ys * row + (x_lo + sx) * C
        dst[o:o + x_lo * C] = 0
        dst[o + x_lo * C:o + x_hi * C] = src[s:s + (x_hi - x_lo) * C]
        dst[o + x_hi * C:o + row] = 0


@_jit
def _affine_generic_into(out, img, m0, m1, m2, m3, m4, m5):  # pragma: no cover - compiled by numba
    """:func:`_affine_into` for any matrix: the same doubles in the same order per pixel as
    Pillow (m1·yc and m4·yc depend on the row only: the same products, hoisted), restructured
    so that LLVM vectorizes it, one row at a time: coordinates, weights and tap indices
    without branches; the four taps gathered from the image packed one pixel per uint32; the
    three channels' blends into planes; then interleaved. A lower row clipped to the image is
    the tap row itself, so Pillow's "no row below: v2 = v1" is v2 computed from the same row
    (the same number)."""
    H, W, C = img.shape
    dst = out.reshape(-1)
    src = img.reshape(-1)
    fW = float(W)
    fH = float(H)
    packed = np.empty(H * W, np.uint32)
    if C == 3:
        for p in range(H * W):
            packed[p] = (np.uint32(src[3 * p]) | (np.uint32(src[3 * p + 1]) << np.uint32(8))
                         | (np.uint32(src[3 * p + 2]) << np.uint32(16)))
    # pixel indices (row 0, row 1) × (column 0, column 1), unsigned (and the output row a
    # view indexed from 0): numba's negative-index checks fold away
    taps = np.empty((4, W), np.uint64)
    got = np.empty((4, W), np.uint32)
    wx = np.empty(W, np.float64)
    wy = np.empty(W, np.float64)
    inside = np.empty(W, np.bool_)
    planes = np.empty((3, W), np.uint8)
    for y in range(H):
        yc = y + 0.5
        by = m1 * yc
        ey = m4 * yc
        for x in range(W):
            xc = x + 0.5
            xin = m0 * xc + by + m2
            yin = m3 * xc + ey + m5
            # | not `or`: no branch (NaN, as in Pillow, counts as inside)
            inside[x] = not ((xin < 0.0) | (xin >= fW) | (yin < 0.0) | (yin >= fH))
            xin = xin - 0.5
            yin = yin - 0.5
            fx = np.floor(xin)
            fy = np.floor(yin)
            wx[x] = xin - fx
            wy[x] = yin - fy
            # inside, floor(x − ½) is in [−1, W − 1] already; outside (and NaN) this keeps
            # the unused taps' reads in the image
            fx = fx if fx > -1.0 else -1.0
            fx = fx if fx < fW - 1.0 else fW - 1.0
            fy = fy if fy > -1.0 else -1.0
            fy = fy if fy < fH - 1.0 else fH - 1.0
            ix = int(fx)
            iy = int(fy)
            x0 = ix if ix > 0 else 0
            x1 = ix + 1 if ix + 1 < W else W - 1
            r0 = (iy if iy > 0 else 0) * W
            r1 = (iy + 1 if iy + 1 < H else H - 1) * W
            taps[0, x] = r0 + x0
            taps[1, x] = r0 + x1
            taps[2, x] = r1 + x0
            taps[3, x] = r1 + x1
        o = y * W * C
        if C != 3:
            for x in range(W):
                p00, p01 = np.int64(taps[0, x]) * C, np.int64(taps[1, x]) * C
                p10, p11 = np.int64(taps[2, x]) * C, np.int64(taps[3, x]) * C
                for c in range(C):
                    a = float(src[p00 + c])
                    v1 = a + (float(src[p01 + c]) - a) * wx[x]
                    a = float(src[p10 + c])
                    v2 = a + (float(src[p11 + c]) - a) * wx[x]
                    dst[o + x * C + c] = np.uint8(int(v1 + (v2 - v1) * wy[x])) if inside[x] else 0
            continue
        for k in range(4):
            for x in range(W):
                got[k, x] = packed[taps[k, x]]
        for x in range(W):
            dx = wx[x]
            dy = wy[x]
            for c in range(3):
                s = np.uint32(8 * c)
                a = float((got[0, x] >> s) & np.uint32(255))
                v1 = a + (float((got[1, x] >> s) & np.uint32(255)) - a) * dx
                a = float((got[2, x] >> s) & np.uint32(255))
                v2 = a + (float((got[3, x] >> s) & np.uint32(255)) - a) * dx
                v = np.uint8(int(v1 + (v2 - v1) * dy))
                planes[c, x] = v if inside[x] else np.uint8(0)
        drow = dst[o:o + 3 * W]
        for x in range(W):
            drow[3 * x] = planes[0, x]
            drow[3 * x + 1] = planes[1, x]
            drow[3 * x + 2] = planes[2, x]


@_jit
def _affine_into(out, img, m0, m1, m2, m3, m4, m5):  # pragma: no cover - compiled by numba
    """Geometry.c's ImagingGenericTransform with affine_transform and bilinear_filter32RGB:
    the output pixel centre (x + ½, y + ½) mapped in double; outside [0, W) × [0, H) the fill
    (0); else taps at floor(x − ½), +1 clipped to the image (the lower row repeated past the
    bottom), blended in double and truncated (:func:`_affine_generic_into`).

    An integer translation (linear part exactly 1, 0, 0, 1; integer offsets below 2³¹) maps
    x + ½ + m2 − ½ = x + m2 exactly (every sum exact in double): weights 0, each tap the
    pixel itself, so the output is the image shifted with 0 fill (:func:`_shift_into`)."""
    if (m0 == 1.0 and m1 == 0.0 and m3 == 0.0 and m4 == 1.0 and np.floor(m2) == m2
            and np.floor(m5) == m5 and abs(m2) < 2.0 ** 31 and abs(m5) < 2.0 ** 31):
        _shift_into(out, img, int(m2), int(m5))
    else:
        _affine_generic_into(out, img, m0, m1, m2, m3, m4, m5)


@_jit
def _warp_into(out, img, code, param, lin):  # pragma: no cover - compiled by numba
    H, W, _ = img.shape
    tx, ty = 0.0, 0.0
    if code == 3:
        tx = float(int(param))
    elif code == 4:
        ty = float(int(param))
    elif code == 15:
        tx = float(int(np.float32(param * np.float32(W))))
    elif code == 16:
        ty = float(int(np.float32(param * np.float32(H))))
    # shears turn about (0, 0), the rest about the centre (W / 2, H / 2)
    cx, cy = (0.0, 0.0) if code in (1, 2) else (W / 2.0, H / 2.0)
    m0, m1, m3, m4 = lin[0], lin[1], lin[2], lin[3]
    m2 = (m0 * (-cx - tx) + m1 * (-cy - ty)) + 0.0 + cx
    m5 = (m3 * (-cx - tx) + m4 * (-cy - ty)) + 0.0 + cy
    _affine_into(out, img, m0, m1, m2, m3, m4, m5)


@_jit
def _apply_into(out, img, code, param, lin):  # pragma: no cover - compiled by numba
    if code == 0:
        out[:] = img
    elif code <= 5 or code >= 15:
        _warp_into(out, img, code, param, lin)
    elif code <= 9:
        _enhance(out.reshape(-1), img.reshape(-1), code, param, img.shape[0], img.shape[1])
    else:
        flat = img.reshape(-1)
        _lut_into(out.reshape(-1), flat, _pointwise_lut(flat, code, param))


@_jit
def policy_into(out, img, codes, params, lins):  # pragma: no cover - compiled by numba
    """The stages (codes[s], params[s], lins[s]) one after the other, into ``out``."""
    active = 0
    for s in range(codes.shape[0]):
        active += codes[s] != 0
    if active == 0:
        out.reshape(-1)[:] = img.reshape(-1)
        return
    a = np.empty(img.shape, np.uint8) if active > 1 else out
    b = np.empty(img.shape, np.uint8) if active > 2 else out
    src = img
    done = 0
    for s in range(codes.shape[0]):
        if codes[s] == 0:
            continue
        done += 1
        dst = out if done == active else (a if done % 2 == 1 else b)
        # the float64 matrix travels as int32 words (DALI makes float64 constants float32)
        lin = np.ascontiguousarray(lins[s]).view(np.float64)
        _apply_into(dst, src, codes[s], params[s], lin)
        src = dst


def _policy_operator():
    """(uint8 HWC image, codes int32 [k], params float32 [k], lins [k, 8] int32: the words of
    float64 [k, 4]) → image."""
    from nvidia.dali import types
    from nvidia.dali.plugin.numba import NumbaFunction

    apply = policy_into

    def setup(outs, ins):  # pragma: no cover - compiled by numba
        for i in range(len(ins[0])):
            outs[0][i][0] = ins[0][i][0]
            outs[0][i][1] = ins[0][i][1]
            outs[0][i][2] = ins[0][i][2]

    def run(out0, in0, in1, in2, in3):  # pragma: no cover - compiled by numba
        apply(out0, in0, in1, in2, in3)

    return NumbaFunction(run_fn=run, setup_fn=setup, out_types=[types.UINT8],
                         in_types=[types.UINT8, types.INT32, types.FLOAT, types.INT32],
                         outs_ndim=[3], ins_ndim=[3, 1, 1, 2], batch_processing=False)


def lin_words(lins) -> np.ndarray:
    """float64 [..., 4] warp matrices as int32 [..., 8] words: DALI keeps int32 constants
    exact, float64 ones it narrows to float32."""
    lins = np.ascontiguousarray(lins, np.float64)
    return lins.view(np.int32).reshape(lins.shape[:-1] + (8,))


def policy_numba(images, codes, params, lins):
    """The DALI node: uint8 HWC ``images`` after the drawn stages: ``codes`` int32 [k]
    (OP_CODES, 0 to skip a stage), ``params`` float32 [k], ``lins`` int32 [k, 8]: the words
    of float64 [k, 4] (:func:`warp_linear`; :func:`lin_words`)."""
    op = numba_operator(("policy",), _policy_operator)
    return op(images, codes, params, lins)


# --------------------------------------------------------------------------- the train step
# The CPU train graph with a policy, in one operator per sample: Pillow's resize of the decoded
# crop, the flip, the drawn stages, the normalization, and RandomErasing's box (torchvision's
# order: RandomResizedCrop → RandomHorizontalFlip → policy → Normalize → RandomErasing). One
# operator instead of three (resize; flip + policy + normalize; erase) writes one output
# instead of three and copies nothing: the erasing fills its box in the normalized output.
# The flip: a warp stage needs the flipped image (its matrix is not mirror-symmetric), every
# other stage commutes with it exactly (pointwise, per-pixel grey, a horizontally symmetric
# 3 × 3 integer filter with a symmetric border, histogram and mean statistics), so without an
# active warp the flip is done by the normalization's store, which costs nothing.

_WARP_CODES = (1, 2, 3, 4, 5, 15, 16)


@_jit
def _mirror_in_place(img):  # pragma: no cover - compiled by numba
    """uint8 HWC ``img`` flipped left-right, in place."""
    H, W, C = img.shape
    flat = img.reshape(H, W * C)
    for y in range(H):
        row = flat[y]
        for x in range(W // 2):
            a, b = x * C, (W - 1 - x) * C
            for c in range(C):
                t = row[a + c]
                row[a + c] = row[b + c]
                row[b + c] = t


@_jit
def train_step_into(out, box, crop, oh, ow, codes, params, lins, mirror, mean, inv_std, erase,
                    vertical_rule, cubic, chw):  # pragma: no cover - compiled by numba
    """out (float32 CHW or HWC, oh × ow) ← torchvision's chain on the uint8 HWC ``crop``:
    PIL's resize to oh × ow, the flip if ``mirror``, the stages (codes, params, lins: as
    :func:`policy_into`), (x − mean) · inv_std in float32, then, when ``erase`` (float32: value
    [C], (coin, top, left, p), area fractions [10], aspects [10]) is not empty, the erasing's
    box (:func:`_erase_box`) filled with the value. ``box`` ← (top, left, h, w)."""
    C = crop.shape[2]
    res = np.empty((oh, ow, C), np.uint8)
    resample_kernel(res, crop, oh, ow, 0, 0, vertical_rule, cubic)
    active, warps = 0, 0
    for s in range(codes.shape[0]):
        if codes[s] != 0:
            active += 1
            for w in _WARP_CODES:
                warps += codes[s] == w
    if mirror and warps > 0:
        _mirror_in_place(res)  # torchvision flips before the policy
        mirror = False
    src = res
    if active > 0:
        src = np.empty((oh, ow, C), np.uint8)
        policy_into(src, res, codes, params, lins)
    # no percentile clip here (graphs.py sends clipped normalizations elsewhere): the shared
    # normalize step's bounds at ±3e38, a no-op
    unbounded = np.full(C, np.float32(3e38), np.float32)
    normalize_into(out, src, mirror, mean, inv_std, -unbounded, unbounded, chw)
    box[:] = 0.0
    if erase.shape[0] > 0:
        H, W = oh, ow
        top, left, eh, ew = _erase_box(H, W, erase[C + 4:C + 14], erase[C + 14:C + 24],
                                       erase[C:C + 4])
        box[0], box[1], box[2], box[3] = top, left, eh, ew
        _fill_box(out, top, left, eh, ew, erase[:C], chw)


def _train_step_operator(chw: bool, cubic: bool):
    """(crop uint8 HWC, size uint8 [oh, ow, 0], codes int32 [k + 1] (the last: mirror),
    params float32 [k], lins int32 [k, 8], float32 [2C + erase]: mean, 1/std, then nothing or
    the erasing's value [C], (coin, top, left, p), areas [10], aspects [10]) → (float32 CHW or
    HWC image, the erased box float32 [4])."""
    from nvidia.dali import types
    from nvidia.dali.plugin.numba import NumbaFunction

    step, vertical_rule = train_step_into, PILLOW_VERTICAL_FIRST
    setup = sized_output_setup(chw, 4)  # the erased box

    def run(out0, out1, in0, in1, in2, in3, in4, in5):  # pragma: no cover - compiled by numba
        k = in2.shape[0] - 1
        C = in0.shape[2]
        step(out0, out1, in0, in1.shape[0], in1.shape[1], in2[:k], in3, in4, in2[k] != 0,
             in5[:C], in5[C:2 * C], in5[2 * C:], vertical_rule, cubic, chw)

    return NumbaFunction(run_fn=run, setup_fn=setup, out_types=[types.FLOAT, types.FLOAT],
                         in_types=[types.UINT8, types.UINT8, types.INT32, types.FLOAT, types.INT32,
                                   types.FLOAT],
                         outs_ndim=[3, 1], ins_ndim=[3, 3, 1, 1, 2, 1], batch_processing=False)


def train_step_numba(crops, codes, params, lins, mirror, *, out_h, out_w, mean, std,
                     layout: str, interpolation: str = "bilinear", erase=None):
    """The DALI node: the whole CPU train step with a policy in one operator
    (:func:`train_step_into`) → (float32 ``layout`` images, erased box [4]). ``crops``: the
    decoded uint8 HWC random crops; ``codes``/``params``/``lins``: the stages' nodes (as
    :func:`policy_numba`); ``out_h``, ``out_w``: ints or run-time int32 nodes
    (``train.size_schedule``); ``mean``, ``std`` in 0–255 units; ``erase``: None, or (value
    [C], probability, the draws of :func:`dalinorm.pipelines.augment.erase_draws`)."""
    from nvidia.dali import fn, types

    from dalinorm.pipelines.train_size import extent

    codes = fn.cat(codes, fn.reshape(fn.cast(mirror, dtype=types.INT32), shape=[1]))
    size = fn.zeros(shape=extent(out_h, out_w, 0), dtype=types.UINT8)
    inv_std = (1.0 / np.array(std, np.float64)).astype(np.float32)
    norm = np.concatenate([np.array(mean, np.float32), inv_std])
    if erase is None:
        floats = types.Constant(norm, device="cpu")
    else:
        value, probability, (area_u, aspect, coin, top_u, left_u) = erase
        head = types.Constant(np.concatenate([norm, np.array(value, np.float32)]), device="cpu")
        u = fn.stack(coin, top_u, left_u, types.Constant(np.float32(probability), device="cpu"))
        floats = fn.cat(head, u, area_u, aspect)
    op = numba_operator(("train step", layout, interpolation, PILLOW_VERTICAL_FIRST),
                        lambda: _train_step_operator(layout == "CHW", is_cubic(interpolation)))
    return op(crops, size, codes, params, lins, floats)
