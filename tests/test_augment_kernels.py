"""The CPU policy operator's fast kernels (pipelines/augment_cpu.py) against torchvision's PIL ops.

The warps and enhancements are restructured for speed (a vectorized affine kernel, a row-copy
path for integer translations, fused Sharpness and Color passes); each must still give
Pillow's bytes exactly, on textured images of odd, non-square and degenerate sizes, at
parameters that reach the image's edges and beyond. The kernels are called directly (the
DALI operator around them is tests/test_augment.py's).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

import torch  # noqa: F401  (core dependency: imported, not skipped)
from torchvision.transforms import v2

from dalinorm.pipelines import augment_cpu as A

F = v2.functional
BILINEAR = v2.InterpolationMode.BILINEAR

SIZES = [(1, 1), (2, 3), (5, 1), (36, 44), (53, 37)]  # (H, W): degenerate and non-square


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """Gradients plus noise: any shift, off-by-one or dropped fill changes pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 5 + yy) % 256, (yy * 7) % 256, ((xx + yy) * 3) % 256], -1)
    return np.clip(base * 0.7 + rng.integers(0, 80, (h, w, 3)), 1, 255).astype(np.uint8)


def pil_op(img: np.ndarray, op: str, param: float) -> np.ndarray:
    """torchvision's _AutoAugmentBase op on the PIL image (translations in pixels)."""
    pil = Image.fromarray(img)
    if op in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(param))
        out = F.affine(pil, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                       shear=[deg, 0.0] if op == "ShearX" else [0.0, deg], interpolation=BILINEAR)
    elif op in ("TranslateX", "TranslateY"):
        px = int(param)
        out = F.affine(pil, angle=0.0, translate=[px, 0] if op == "TranslateX" else [0, px],
                       scale=1.0, shear=[0.0, 0.0], interpolation=BILINEAR)
    elif op == "Rotate":
        out = F.rotate(pil, angle=param, interpolation=BILINEAR)
    elif op == "Sharpness":
        out = F.adjust_sharpness(pil, param)
    elif op == "Color":
        out = F.adjust_saturation(pil, param)
    elif op == "Brightness":
        out = F.adjust_brightness(pil, param)
    else:
        out = F.adjust_contrast(pil, param)
    return np.asarray(out)


def numba_op(img: np.ndarray, op: str, param: float) -> np.ndarray:
    out = np.empty_like(img)
    A.policy_into(out, img, np.array([A.OP_CODES[op]], np.int32), np.array([param], np.float32),
                  np.array([A.warp_linear(op.split("@")[0], param)], np.float64).view(np.int32))
    return out


def _shifts(side: int) -> list[int]:
    """Integer shifts of both signs: none, one pixel, inside, to the edge, and beyond it."""
    return sorted({s * k for s in (1, -1) for k in (0, 1, 3, side - 1, side, side + 1, 2 * side + 5)})


@pytest.mark.parametrize("hw", SIZES)
def test_integer_translations_are_pils_shift_with_fill(hw):
    """TranslateX/Y (trivial_augment_wide: whole pixels, the fraction truncated as
    torchvision's int() does) take the row-copy path: PIL's bytes at every shift."""
    h, w = hw
    img = textured(h, w, seed=h * 31 + w)
    for op, side in (("TranslateX", w), ("TranslateY", h)):
        for shift in _shifts(side) + [7.9, -7.9]:
            param = float(np.float32(shift))
            np.testing.assert_array_equal(numba_op(img, op, param), pil_op(img, op, param),
                                          err_msg=f"{op} {param} on {h}x{w}")


@pytest.mark.parametrize("hw", SIZES)
def test_side_fraction_translations_are_pils(hw):
    """TranslateX/Y@side (RandAugment, AutoAugment): int(param · side) pixels, beyond ±side too."""
    h, w = hw
    img = textured(h, w, seed=7)
    for op, side in (("TranslateX", w), ("TranslateY", h)):
        for frac in (0.3, -0.45, 0.99, -1.0, 1.5, -2.25):
            px = float(np.float32(np.float32(frac) * np.float32(side)))
            np.testing.assert_array_equal(numba_op(img, f"{op}@side", frac), pil_op(img, op, px),
                                          err_msg=f"{op}@side {frac} on {h}x{w}")


def test_shift_path_is_the_generic_kernel_at_integer_offsets():
    """The row copy against the generic bilinear kernel itself, at integer offsets of both
    signs and beyond the image, on random images: the same bytes (weights exactly 0)."""
    rng = np.random.default_rng(0)
    for h, w in SIZES + [(150, 176)]:
        img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        for _ in range(40):
            sx = int(rng.integers(-2 * w - 3, 2 * w + 4))
            sy = int(rng.integers(-2 * h - 3, 2 * h + 4)) if rng.random() < 0.7 else 0
            fast, generic = np.full_like(img, 9), np.full_like(img, 99)
            A._affine_into(fast, img, 1.0, 0.0, float(sx), 0.0, 1.0, float(sy))
            A._affine_generic_into(generic, img, 1.0, 0.0, float(sx), 0.0, 1.0, float(sy))
            np.testing.assert_array_equal(fast, generic, err_msg=f"shift {sx}, {sy} on {h}x{w}")


WARPS = [("ShearX", 0.99), ("ShearX", -0.3), ("ShearY", 0.45), ("ShearY", -0.99),
         ("Rotate", 30.0), ("Rotate", -135.0), ("Rotate", 90.0), ("Rotate", 180.0), ("Rotate", 0.0)]


@pytest.mark.parametrize("hw", SIZES)
def test_generic_warps_are_pils(hw):
    """Shears and rotations through the vectorized bilinear kernel: PIL's bytes, edges and
    fill included (90° on a non-square image is a true affine warp here, not a transpose)."""
    h, w = hw
    img = textured(h, w, seed=3)
    for op, param in WARPS:
        param = float(np.float32(param))
        np.testing.assert_array_equal(numba_op(img, op, param), pil_op(img, op, param),
                                      err_msg=f"{op} {param} on {h}x{w}")


@pytest.mark.parametrize("hw", SIZES)
def test_enhancements_are_pils(hw):
    """Sharpness (SMOOTH filter and blend, the 1-pixel border kept), Color (the L image and
    blend), Brightness and Contrast: PIL's bytes, factors 0, in (0, 1), 1 and above."""
    h, w = hw
    img = textured(h, w, seed=11)
    for op in ("Sharpness", "Color", "Brightness", "Contrast"):
        for factor in (0.0, 0.3, 1.0, 1.9, 3.7):
            factor = float(np.float32(factor))
            np.testing.assert_array_equal(numba_op(img, op, factor), pil_op(img, op, factor),
                                          err_msg=f"{op} {factor} on {h}x{w}")
