"""The CPU's exact path of pipelines/augment.py: numba-compiled DALI operators.

On DALI's CPU backend every stock operator is a pass over the batch with its own overhead, and
torchvision's augmentations are many small ones (RandomErasing's box is ≈30 scalar operators per
sample; a policy's blend is five image-sized passes). Here each augmentation is one operator:
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

from dalinorm.pipelines.resample import numba_operator

__all__ = ["erase_numba"]

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
def _erase_into(out, box, img, area_u, aspect, u, value, chw):  # pragma: no cover
    if chw:
        H, W = img.shape[1], img.shape[2]
    else:
        H, W = img.shape[0], img.shape[1]
    top, left, eh, ew = _erase_box(H, W, area_u, aspect, u)
    box[0], box[1], box[2], box[3] = top, left, eh, ew
    out[:] = img
    t, l, h, w = int(top), int(left), int(eh), int(ew)
    if chw:
        for c in range(out.shape[0]):
            out[c, t:t + h, l:l + w] = value[c]
    else:
        for c in range(out.shape[2]):
            out[t:t + h, l:l + w, c] = value[c]


def _erase_operator(chw: bool):
    """(image, area draws [10], aspects [10], (coin, top, left, p), value [3]) →
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
    RandomErasing box filled with ``value`` (3 floats), and the box (top, left, h, w) as
    float32 [4]. ``draws``: (area uniforms [10], aspects [10], (coin, top, left) uniforms)."""
    from nvidia.dali import fn, types

    area_u, aspect, coin, top_u, left_u = draws
    u = fn.stack(coin, top_u, left_u, types.Constant(np.float32(probability), device="cpu"))
    value = types.Constant(np.array(value, np.float32), device="cpu")
    op = numba_operator(("erase", layout), lambda: _erase_operator(layout == "CHW"))
    out, box = op(images, area_u, aspect, u, value)
    return out, box
