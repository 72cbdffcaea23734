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

from dalinorm.config import Config

__all__ = ["LUMA_WEIGHTS", "decode_kind_args", "full_scale_of", "to_data_channels"]

# PIL's convert("L") weights (Convert.c: L24 scaled to 16 bits), and its rounding offset
LUMA_WEIGHTS = (19595, 38470, 7471)
_LUMA_SHIFT = 16


def full_scale_of(dtype: str) -> float:
    """The level that is 1.0 on the [0, 1] scale: 255 for uint8, 65535 for uint16, 1 for
    float32 (arrays as stored)."""
    return {"uint8": 255.0, "uint16": 65535.0}.get(dtype, 1.0)


def decode_kind_args(cfg: Config) -> dict:
    """Keyword arguments of DALI's image decoders for the config's kind: RGB always (see the
    module docstring), and 16 bits per sample for ``data.dtype: uint16``."""
    from dalinorm.pipelines.specs import import_dali

    _, types, _ = import_dali()
    args: dict = {"output_type": types.RGB}
    if cfg.data.dtype == "uint16":
        args["dtype"] = types.UINT16
    return args


def to_data_channels(images, cfg: Config):
    """Decoded RGB HWC images → ``data.channels`` channels: as they are for 3; for 1, PIL's
    ``convert("L")`` in integers (int64 arithmetic, floor division = the shift), [H, W, 1]
    of the same dtype. Stock operators: one definition for both devices."""
    if cfg.data.channels == 3:
        return images
    from dalinorm.pipelines.specs import import_dali

    fn, types, _ = import_dali()
    wide = fn.cast(images, dtype=types.INT64)
    r, g, b = (wide[:, :, c:c + 1] for c in range(3))
    kr, kg, kb = LUMA_WEIGHTS
    luma = (r * kr + g * kg + b * kb + (1 << (_LUMA_SHIFT - 1))) // (1 << _LUMA_SHIFT)
    return fn.cast(luma, dtype=types.UINT16 if cfg.data.dtype == "uint16" else types.UINT8)
