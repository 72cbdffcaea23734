"""pipelines/resample.py's RGB horizontal pass moves pixels in 8 × 8 blocks (LLVM shuffles) and
the strips left over one pixel at a time; here the kernel meets the installed Pillow's
Image.resize bit for bit on sizes around those blocks: widths and heights below, at and past
multiples of 8, 1-pixel-wide images and windows, windows whose first column is not a
multiple of 8, downscales by up to 230×, upscales, both filters, both pass orders.

Noise images: every input pixel differs from its neighbours, so a pixel moved to another
place, a swapped channel or a dropped block changes the output. No tolerance: the kernel
claims Pillow's exact integers.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

# (input h, w) → (resize h, w), then a window (h, w, top, left) of that resize or None
CASES = [
    ((8, 8), (5, 5), None),            # one block in, the rest strips
    ((9, 17), (7, 15), None),          # a block plus 1-pixel strips on both sides
    ((7, 7), (16, 24), None),          # no whole block in (pure strips), upscale
    ((1, 97), (1, 33), None),          # a 1-pixel-tall image: horizontal only
    ((97, 1), (33, 5), None),          # a 1-pixel-wide image widened
    ((61, 300), (40, 1), None),        # down to 1 pixel wide
    ((23, 700), (23, 3), None),        # 230× narrower: 700 taps per output pixel (bicubic 1400)
    ((600, 41), (9, 37), None),        # height shrinks far more: Pillow 13 resizes vertically first
    ((601, 43), (11, 23), (9, 13, 1, 5)),  # ... and a window of it
    ((131, 203), (96, 161), (64, 100, 13, 29)),  # window starting at an odd column
    ((131, 203), (96, 161), (1, 1, 50, 77)),     # a 1 × 1 window
    ((131, 203), (96, 161), (95, 1, 0, 160)),    # a 1-pixel-wide window at the right edge
    ((45, 150), (96, 56), (81, 49, 7, 7)),       # up on one axis, down on the other
    ((257, 129), (176, 176), None),    # a train crop's shape
]


@pytest.mark.parametrize("cubic", [False, True], ids=["bilinear", "bicubic"])
@pytest.mark.parametrize("in_hw, full_hw, window", CASES)
def test_kernel_equals_pillow_around_block_edges(in_hw, full_hw, window, cubic):
    from dalinorm.pipelines.resample import resample_into

    rng = np.random.default_rng(in_hw[0] * 1009 + in_hw[1])
    img = rng.integers(0, 256, (*in_hw, 3), dtype=np.uint8)
    img[: in_hw[0] // 2, : in_hw[1] // 3] = (255, 0, 255)  # hard edges: bicubic's clip8 decides
    resample = Image.BICUBIC if cubic else Image.BILINEAR
    ref = np.asarray(Image.fromarray(img).resize(full_hw[::-1], resample))
    oh, ow, top, left = window or (*full_hw, 0, 0)
    out = np.empty((oh, ow, 3), np.uint8)
    resample_into(out, img, full_hw[0], full_hw[1], top, left,
                  interpolation="bicubic" if cubic else "bilinear")
    expect = ref[top:top + oh, left:left + ow]
    assert np.array_equal(out, expect), (
        f"{np.count_nonzero((out != expect).any(-1))} of {oh * ow} pixels differ")


def test_one_channel_kernel_equals_pillow():
    """Grey images take the scalar horizontal pass (mode "L" in Pillow)."""
    from dalinorm.pipelines.resample import resample_into

    img = np.random.default_rng(5).integers(0, 256, (37, 53, 1), dtype=np.uint8)
    for cubic, resample in ((False, Image.BILINEAR), (True, Image.BICUBIC)):
        ref = np.asarray(Image.fromarray(img[..., 0]).resize((19, 29), resample))
        out = np.empty((29, 19, 1), np.uint8)
        resample_into(out, img, interpolation="bicubic" if cubic else "bilinear")
        assert np.array_equal(out[..., 0], ref)
