"""Image kinds in the graphs: how files are decoded for ``data.channels`` (1 or 3) and
``data.dtype`` (uint8 or uint16), and the level that is 1.0 on the [0, 1] scale.

Every graph decodes to RGB first, with ``dtype=UINT16`` for 16-bit data (DALI 2.4 returns
16-bit PNG and TIFF samples bit-exactly; without it they are scaled to 8 bits). A grayscale
dataset is then converted in the graph with PIL's ``convert("L")`` rule in integers,
``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16`` (ITU-R 601-2 luma, 16-bit fixed point;
Pillow's ``ImagingConvertRGB2L``): DALI's own ``output_type=GRAY`` rounds differently, it was
one level off PIL on half the pixels of a random RGB image (measured 2026-12-01, DALI 2.4.0,
Pillow 13). A grayscale file decoded to RGB has R = G = B, so the rule gives it back
unchanged (19595 + 38470 + 7471 = 2**16): gray files pass exactly, RGB files are converted as
PIL converts them. 16-bit RGB files use the same integer weights (PIL has no 16-bit RGB mode;
the sum stays below 2**32). The cost: grayscale files are decoded to three channels first.

Which bit depth a file has is not visible in the graph (DALI rescales 8-bit files to 16 bits
with ``dtype=UINT16``, ×257, and 16-bit files to 8 bits without it): files of the wrong bit
depth are refused before the graph runs, by their headers (:mod:`dalinorm.data.sample_type`).
"""

from __future__ import annotations

import numpy as np

from dalinorm.config import Config
from dalinorm.data.arrays import array_full_scale

__all__ = ["LUMA_WEIGHTS", "decode_kind_args", "full_scale_of", "to_data_channels"]

# PIL's convert("L") weights (Convert.c: L24 scaled to 16 bits), and its rounding offset
LUMA_WEIGHTS = (19595, 38470, 7471)
_LUMA_SHIFT = 16


# The level that is 1.0 on the [0, 1] scale: 255 for uint8, 65535 for uint16, 1 for float32
# (arrays as stored); one table for images and arrays, kept in the data listing's room.
full_scale_of = array_full_scale


def decode_kind_args(cfg: Config) -> dict:
    """Keyword arguments of DALI's image decoders for the config's kind: RGB always (see the
    module docstring), and 16 bits per sample for ``data.dtype: uint16``."""
    from dalinorm.pipelines.specs import import_dali

    _, types, _ = import_dali()
    args: dict = {"output_type": types.RGB}
    if cfg.data.dtype == "uint16":
        args["dtype"] = types.UINT16
    return args


def _luma_run(out0, in0):  # pragma: no cover - compiled by numba, run inside DALI
    # out0 [H, W, 1], in0 [H, W, 3] (uint8 or uint16): PIL's rule, in int64 (exact)
    for y in range(in0.shape[0]):
        for x in range(in0.shape[1]):
            out0[y, x, 0] = (np.int64(in0[y, x, 0]) * 19595 + np.int64(in0[y, x, 1]) * 38470
                             + np.int64(in0[y, x, 2]) * 7471 + 32768) >> 16


def _luma_setup(outs, ins):  # pragma: no cover - compiled by numba
    for i in range(len(ins[0])):
        outs[0][i][0] = ins[0][i][0]
        outs[0][i][1] = ins[0][i][1]
        outs[0][i][2] = 1


def to_data_channels(images, cfg: Config, *, on_gpu: bool = False):
    """Decoded RGB HWC images → ``data.channels`` channels: as they are for 3; for 1, PIL's
    ``convert("L")`` in integers, [H, W, 1] of the same dtype. On the CPU a numba operator
    (one pass: with DALI's CPU arithmetic, 16-bit 512² PNGs decoded at 68 images/s instead
    of 187 on two cores; with the operator decode + luma ran as fast as the RGB decode alone,
    ≈85 vs 83 images/s on a loaded machine, 2026-12-01; decoding straight to GRAY would be
    ≈25% faster but DALI's rule is not PIL's). On the GPU, or without numba, stock operators
    (int64 arithmetic, floor division = the shift)."""
    if cfg.data.channels == 3:
        return images
    from dalinorm.pipelines.specs import import_dali

    fn, types, _ = import_dali()
    sample = types.UINT16 if cfg.data.dtype == "uint16" else types.UINT8
    if not on_gpu:
        try:
            from nvidia.dali.plugin.numba import NumbaFunction

            from dalinorm.pipelines.resample import numba_operator
        except ImportError:
            pass
        else:
            op = numba_operator(("luma", cfg.data.dtype), lambda: NumbaFunction(
                run_fn=_luma_run, setup_fn=_luma_setup, out_types=[sample], in_types=[sample],
                outs_ndim=[3], ins_ndim=[3], batch_processing=False))
            return op(images)
    wide = fn.cast(images, dtype=types.INT64)
    r, g, b = (wide[:, :, c:c + 1] for c in range(3))
    kr, kg, kb = LUMA_WEIGHTS
    luma = (r * kr + g * kg + b * kb + (1 << (_LUMA_SHIFT - 1))) // (1 << _LUMA_SHIFT)
    return fn.cast(luma, dtype=sample)
