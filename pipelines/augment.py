"""Per-sample augmentations of the train graph, with torchvision's meaning.

Order (torchvision's ``references/classification/presets.py``): random resized crop → flip →
``train.color_jitter`` → ``train.auto_augment`` (both on the uint8 HWC image) → normalize →
``train.random_erase`` (on the normalized image). The policies are built from DALI's
``nvidia.dali.auto_aug`` pieces (its ``select`` on conditionals, its operators), but with
torchvision's operation list, magnitudes, number of bins, signs, fill (0, black) and
probabilities, and with brightness, contrast and saturation computed as PIL does (an integer
grey mean or ``L`` image, a float32 blend truncated to uint8). What still differs, per
operation, is measured in docs/AUGMENT.md and held to tolerances in tests/test_augment.py.
That is the GPU's path. On CPU images the policies and the erasing run instead as numba
operators from the same draws (:mod:`dalinorm.pipelines.augment_cpu`), bit-exact to
torchvision's PIL ops and needing no conditionals.

Every random draw is made here, from the pipeline's seed, so :func:`augment_images` can also
return the draws (``with_draws=True``) that select each sample's operations: the distribution
tests count them.
"""

from __future__ import annotations

import math
from typing import Sequence

from dalinorm.config import Config
from dalinorm.pipelines.specs import import_dali

__all__ = [
    "IMAGENET_POLICY",
    "POLICY_OPS",
    "describe_augmentation",
    "erase_draws",
    "erase_images",
    "erase_params",
    "fuses_normalization",
    "augment_images",
    "needs_conditionals",
    "apply_op",
    "op_parameter",
    "policy_magnitudes",
    "uses_augmentation",
]

# torchvision's AutoAugmentPolicy.IMAGENET (the AutoAugment paper's ImageNet policy as
# torchvision writes it: 25 sub-policies of (operation, probability, magnitude bin of 10)).
# DALI's own get_image_net_policy is the TF original (11 bins, SolarizeAdd, unsigned Color
# 0.1–1.9) and differs: this table is checked against torchvision's in the tests.
IMAGENET_POLICY: tuple = (
    (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
    (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
    (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
    (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, None)),
    (("Color", 0.4, 0), ("Equalize", 0.6, None)),
    (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
    (("Invert", 0.6, None), ("Equalize", 1.0, None)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
)
AUTO_AUGMENT_BINS = 10  # torchvision's AutoAugment draws its magnitudes from 10 bins

# the operations of TrivialAugmentWide and RandAugment, in torchvision's order
POLICY_OPS: tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
    "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize",
)
_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
           "Contrast", "Sharpness"}


def _linspace32(start: float, end: float, n: int):
    """torch.linspace(start, end, n) in float32 bit for bit, as torch's CPU kernel computes it:
    a float32 step, the first half start + step·i and the second end − step·(n − 1 − i), each
    a fused multiply-add (one rounding: emulated in double, exact for these products)."""
    import numpy as np

    f, d = np.float32, np.float64
    if n == 1:
        return np.array([start], np.float32)
    step = (f(end) - f(start)) / f(n - 1)
    i = np.arange(n)
    up = (d(f(start)) + d(step) * i).astype(np.float32)
    down = (d(f(end)) - d(step) * (n - 1 - i)).astype(np.float32)
    return np.where(i < n // 2, up, down).astype(np.float32)


def policy_magnitudes(policy: str, op: str, num_bins: int):
    """torchvision's magnitudes of ``op`` under ``policy`` (float32, ``num_bins`` of them, or
    None for operations without one), as its ``_AUGMENTATION_SPACE`` writes them:
    TrivialAugmentWide's wide ranges, RandAugment's and AutoAugment's narrow ones.
    Translations: pixels for TrivialAugmentWide (32), else a fraction of the side (150/331;
    torchvision multiplies by the side first, here the graph does: ≤ 1 ulp apart)."""
    import numpy as np

    wide = policy == "trivial_augment_wide"
    lin = lambda hi: _linspace32(0.0, hi, num_bins)  # noqa: E731
    steps = np.arange(num_bins) / ((num_bins - 1) / (6 if wide else 4)) if num_bins > 1 else np.zeros(1)
    table = {
        "ShearX": lin(0.99 if wide else 0.3),
        "ShearY": lin(0.99 if wide else 0.3),
        "TranslateX": lin(32.0) if wide else lin(150.0 / 331.0),
        "TranslateY": lin(32.0) if wide else lin(150.0 / 331.0),
        "Rotate": lin(135.0 if wide else 30.0),
        "Brightness": lin(0.99 if wide else 0.9),
        "Color": lin(0.99 if wide else 0.9),
        "Contrast": lin(0.99 if wide else 0.9),
        "Sharpness": lin(0.99 if wide else 0.9),
        # torch.round is half to even, as numpy's
        "Posterize": (8 - np.round(steps)).astype(np.float32),
        "Solarize": _linspace32(1.0, 0.0, num_bins),
    }
    return table.get(op)


_ENHANCE = {"Brightness", "Color", "Contrast", "Sharpness"}


def op_parameter(op: str, magnitude: float) -> float:
    """What torchvision hands the functional op for a (signed) magnitude, computed as it does,
    in double: the enhance factor 1 + m; Solarize's threshold 255·m, as the integer ceiling
    (``pixel < t`` is ``pixel < ceil(t)`` for integer pixels; a float32 threshold would round
    204.000003 to 204 and flip pixel 204); Posterize's bits; else m itself."""
    m = float(magnitude)
    if op in _ENHANCE:
        return 1.0 + m
    if op == "Solarize":
        return float(math.ceil(255.0 * m))
    return m


# --------------------------------------------------------------------------- the operations
# Each takes (uint8 HWC images, per-sample parameter) and returns uint8 HWC images.


def _blend_truncated(base, images, factor):
    """PIL's ``Image.blend(base, images, factor)``: base + factor·(images − base) in float32,
    clipped to [0, 255] and truncated to uint8 (PIL's ImagingBlend casts, it does not round).
    One arithmetic expression (DALI evaluates it in one pass; the integer difference is exact
    and promotes to float32 at the product, as in PIL's C), then the cast."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    mixed = base + factor * (images - base)
    return fn.cast(dmath.floor(dmath.clamp(mixed, 0.0, 255.0)), dtype=types.UINT8)


def _pil_grey(images):
    """PIL's ``convert("L")`` of RGB: (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16, as int32 HW1."""
    fn, types, _ = import_dali()
    wide = fn.cast(images, dtype=types.INT32)
    r, g, b = (wide[:, :, c:c + 1] for c in range(3))
    return (r * 19595 + g * 38470 + b * 7471 + 32768) >> 16


def adjust_brightness(images, factor):
    """PIL's ImageEnhance.Brightness: a blend with black (torchvision's PIL path), which is
    0 + f·(x − 0) = f·x exactly."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    return fn.cast(dmath.floor(dmath.min(images * factor, 255.0)), dtype=types.UINT8)


def adjust_saturation(images, factor):
    """PIL's ImageEnhance.Color: a blend with the image's own ``L`` grey."""
    fn, types, _ = import_dali()
    grey = _pil_grey(images)
    return _blend_truncated(grey, images, factor)


def adjust_contrast(images, factor):
    """PIL's ImageEnhance.Contrast: a blend with a flat grey at int(mean of ``L`` + 0.5)."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    pivot = dmath.floor(fn.reductions.mean(_pil_grey(images)) + 0.5)
    return _blend_truncated(pivot, images, factor)


def adjust_hue(images, hue):
    """DALI's ``fn.hue`` (a rotation in YIQ, degrees): not PIL's 8-bit HSV shift that
    torchvision's PIL path applies; the difference is measured in docs/AUGMENT.md."""
    fn, _, _ = import_dali()
    return fn.hue(images, hue=hue * 360.0)


def _truncate_to_uint8(images):
    """float → uint8 toward zero: PIL's bilinear transform truncates its result (with DALI's
    rounding half the pixels were 1 level above PIL's; truncated, 1% of a shear's and 0.01% of
    a rotation's interior pixels differ, by 1)."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    return fn.cast(dmath.floor(images), dtype=types.UINT8)


def _affine(images, matrix):
    fn, types, _ = import_dali()
    # torchvision's policies fill with 0 (fill=None) and the recipe's interpolation (bilinear)
    return _truncate_to_uint8(fn.warp_affine(images, matrix=matrix, fill_value=0,
                                             interp_type=types.INTERP_LINEAR, inverse_map=False,
                                             dtype=types.FLOAT))


def _truncated(x):
    """int(x) toward zero, as torchvision's ``int(magnitude)`` for translations."""
    from nvidia.dali import math as dmath

    return dmath.floor(dmath.abs(x)) * (1.0 - 2.0 * (x < 0))


def shear_x(images, shear):
    """torchvision's ShearX(m) (an affine with shear atan(m) about the corner (0, 0)) is
    DALI's shear by −m: the two write the sign the other way round."""
    fn, _, _ = import_dali()
    return _affine(images, fn.transforms.shear(shear=fn.stack(-shear, shear * 0.0)))


def shear_y(images, shear):
    fn, _, _ = import_dali()
    return _affine(images, fn.transforms.shear(shear=fn.stack(shear * 0.0, -shear)))


def translate_x(images, offset, relative: bool):
    fn, types, _ = import_dali()
    if relative:
        offset = offset * fn.cast(images.shape(dtype=types.INT32)[1], dtype=types.FLOAT)
    offset = _truncated(offset)
    return _affine(images, fn.transforms.translation(offset=fn.stack(offset, offset * 0.0)))


def translate_y(images, offset, relative: bool):
    fn, types, _ = import_dali()
    if relative:
        offset = offset * fn.cast(images.shape(dtype=types.INT32)[0], dtype=types.FLOAT)
    offset = _truncated(offset)
    return _affine(images, fn.transforms.translation(offset=fn.stack(offset * 0.0, offset)))


def rotate(images, angle):
    fn, types, _ = import_dali()
    # the same centre (W/2, H/2) and sense (counter-clockwise) as PIL's rotate
    return _truncate_to_uint8(fn.rotate(images, angle=angle, fill_value=0,
                                        interp_type=types.INTERP_LINEAR, keep_size=True,
                                        dtype=types.FLOAT))


def sharpness(images, factor):
    """PIL's ImageEnhance.Sharpness: a blend with PIL's SMOOTH filter of the image
    ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, rounded to uint8), whose 1-pixel border PIL
    leaves unfiltered (the border mask here: the filter of a ones image with zero fill)."""
    import numpy as np

    fn, types, _ = import_dali()
    kernel = types.Constant(np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0)
    smooth = fn.filter(images, kernel)
    ones = fn.cast(images[:, :, 0:1] * 0 + 1, dtype=types.FLOAT)
    inner = fn.filter(ones, kernel, border="constant") > 0.99  # zeros outside
    degenerate = inner * fn.cast(smooth, dtype=types.FLOAT) + (inner ^ True) * fn.cast(images, dtype=types.FLOAT)
    return _blend_truncated(degenerate, images, factor)


def posterize(images, bits):
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    # keep the top ``bits`` bits: mask = 256 − 2^(8 − bits) (exact in float32)
    keep = fn.cast(256.0 - dmath.pow(2.0, 8.0 - fn.cast(bits, dtype=types.FLOAT)), dtype=types.UINT8)
    return images & keep


def solarize(images, threshold):
    """Pixels >= threshold inverted (PIL's ImageOps.solarize)."""
    fn, types, _ = import_dali()
    inverted = types.Constant(255, dtype=types.UINT8) - images
    low = images < threshold
    return low * images + (low ^ True) * inverted


def auto_contrast(images, _):
    """PIL's ImageOps.autocontrast per channel: lut(i) = int(i·s − lo·s), s = 255/(hi − lo)."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    lo = fn.cast(fn.reductions.min(images, axis_names="HW", keep_dims=True), dtype=types.FLOAT)
    hi = fn.cast(fn.reductions.max(images, axis_names="HW", keep_dims=True), dtype=types.FLOAT)
    spread = hi - lo
    flat = spread <= 0
    scale = 255.0 / (spread + flat)  # a flat channel is left as it is (PIL's identity lut)
    scale = scale * (flat ^ True) + flat
    offset = -lo * scale * (flat ^ True)
    out = dmath.floor(dmath.clamp(fn.cast(images, dtype=types.FLOAT) * scale + offset, 0.0, 255.0))
    return fn.cast(out, dtype=types.UINT8)


def equalize(images, _):
    """DALI's (OpenCV's) histogram equalization; PIL's lut rounds differently (docs/AUGMENT.md)."""
    fn, _, _ = import_dali()
    return fn.equalize(images)


def invert(images, _):
    _, types, _ = import_dali()
    return types.Constant(255, dtype=types.UINT8) - images


def identity(images, _):
    return images


def _op_table(policy: str):
    relative = policy != "trivial_augment_wide"
    return {
        "Identity": identity,
        "ShearX": shear_x,
        "ShearY": shear_y,
        "TranslateX": lambda img, p: translate_x(img, p, relative),
        "TranslateY": lambda img, p: translate_y(img, p, relative),
        "Rotate": rotate,
        "Brightness": adjust_brightness,
        "Color": adjust_saturation,
        "Contrast": adjust_contrast,
        "Sharpness": sharpness,
        "Posterize": posterize,
        "Solarize": solarize,
        "AutoContrast": auto_contrast,
        "Equalize": equalize,
        "Invert": invert,
    }


def apply_op(images, name: str, parameter, *, policy: str = "rand_augment"):
    """One operation as torchvision's policies apply it, at ``parameter`` (a per-sample float32
    DataNode: :func:`op_parameter` of the magnitude: an enhance factor, Solarize's threshold,
    Posterize's bits, a shear factor, degrees, or a translation in pixels (TrivialAugmentWide)
    or a fraction of the side)."""
    return _op_table(policy)[name](images, parameter)


def _select(names: Sequence[str], index, images, magnitude, policy: str):
    """``ops[index](images, magnitude)`` per sample: DALI's auto_aug ``select`` (a binary tree
    of conditionals that splits the batch by ``index``)."""
    from nvidia.dali.auto_aug.core import select

    table = _op_table(policy)
    ops = [lambda img, m, f=table[n]: f(img, m) for n in names]
    return select(ops, index, images, magnitude)


def _magnitude_table(policy: str, names: Sequence[str], num_bins: int):
    """[ops, 2·bins] float32 table: the parameter of (op, bin, sign), sign 1 negating the
    magnitude of signed ops (:func:`op_parameter`, in double, then float32)."""
    import numpy as np

    table = np.zeros((len(names), 2 * num_bins), dtype=np.float32)
    for i, name in enumerate(names):
        mags = policy_magnitudes(policy, name, num_bins)
        if mags is None:
            continue
        for b, m in enumerate(mags):
            table[i, b] = op_parameter(name, m)
            table[i, num_bins + b] = op_parameter(name, -m if name in _SIGNED else m)
    return table


def _lookup(table, op, column):
    """table[op, column] per sample (op and column int32 DataNodes)."""
    _, types, _ = import_dali()
    flat = types.Constant(table.reshape(-1))
    return flat[op * table.shape[1] + column]


def _uniform_int(n: int, shape=None):
    fn, types, _ = import_dali()
    kwargs = {} if shape is None else {"shape": shape}
    return fn.random.uniform(values=list(range(n)), dtype=types.INT32, **kwargs)


def _sign(shape=None):
    """torchvision negates a signed magnitude when torch.rand() <= 0.5: probability 1/2."""
    return _uniform_int(2, shape)


def _policy(images, aa, with_draws: bool, stock: bool = True, normalize=None, step=None):
    """The policy's draws per sample, then its operations: with ``stock``, DALI operators
    selected by conditionals (the GPU's path); else one numba operator applying every stage
    (:func:`dalinorm.pipelines.augment_cpu.policy_numba`, the CPU's path; with ``normalize``
    and ``step`` the whole train step, ``train_step_numba``), from the same draws."""
    fn, types, _ = import_dali()
    draws: dict = {}
    stages_cpu: list = []  # (code, parameter, warp row) per stage, for the numba operator
    if aa.policy in ("trivial_augment_wide", "rand_augment"):
        names, bins = POLICY_OPS, aa.num_magnitude_bins
        table = _magnitude_table(aa.policy, names, bins)
        stages = 1 if aa.policy == "trivial_augment_wide" else aa.num_ops
        for stage in range(stages):
            op = _uniform_int(len(names))
            # TrivialAugmentWide draws the bin; RandAugment uses magnitude for every op
            b = _uniform_int(bins) if aa.policy == "trivial_augment_wide" else aa.magnitude
            sign = _sign()
            magnitude = _lookup(table, op, b + bins * sign)
            if stock:
                images = _select(names, op, images, magnitude, aa.policy)
            else:
                stages_cpu.append((op, magnitude, op * table.shape[1] + b + bins * sign, None))
            draws.update({f"op{stage}": op, f"sign{stage}": sign, f"param{stage}": magnitude})
            if aa.policy == "trivial_augment_wide":
                draws[f"bin{stage}"] = b
    elif aa.policy == "auto_augment_imagenet":
        import numpy as np

        names = sorted({op for sub in IMAGENET_POLICY for op, _, _ in sub})
        table = _magnitude_table("auto_augment_imagenet", names, AUTO_AUGMENT_BINS)
        ops = np.array([[names.index(op) for op, _, _ in sub] for sub in IMAGENET_POLICY], np.int32)
        probs = np.array([[p for _, p, _ in sub] for sub in IMAGENET_POLICY], np.float32)
        bins = np.array([[m or 0 for _, _, m in sub] for sub in IMAGENET_POLICY], np.int32)
        sub = _uniform_int(len(IMAGENET_POLICY))
        draws["sub_policy"] = sub
        for stage in range(ops.shape[1]):
            op = types.Constant(ops[:, stage])[sub]
            p = types.Constant(probs[:, stage])[sub]
            b = types.Constant(bins[:, stage])[sub]
            u = fn.random.uniform(range=[0.0, 1.0])
            sign = _sign()
            magnitude = _lookup(table, op, b + AUTO_AUGMENT_BINS * sign)
            # torchvision: a stage runs when torch.rand() <= p
            run = u <= p
            if not stock:
                stages_cpu.append((op, magnitude, op * table.shape[1] + b + AUTO_AUGMENT_BINS * sign,
                                   run))
            elif run:
                images = _select(names, op, images, magnitude, aa.policy)
            else:
                images = images
            draws.update({f"run{stage}": run, f"op{stage}": op, f"sign{stage}": sign,
                          f"param{stage}": magnitude})
    if not stock:
        images = _policy_numba(images, aa.policy, names, table, stages_cpu, normalize, step, draws)
    return images, draws


def _policy_numba(images, policy: str, names, table, stages, normalize=None, step=None,
                  draws=None):
    """Each stage's operation code, parameter and warp matrix (looked up per sample in tables
    made here in Python), then the one numba operator that applies them all (with ``step``,
    the train step's operator, which also resizes before and erases after: see
    :func:`augment_images`; the erased box joins ``draws``)."""
    import numpy as np

    fn, types, _ = import_dali()
    from nvidia.dali.pipeline import do_not_convert

    from dalinorm.pipelines.augment_cpu import OP_CODES, lin_words, policy_numba, warp_linear

    relative = policy != "trivial_augment_wide"
    codes = np.array([OP_CODES[f"{n}@side" if relative and n.startswith("Translate") else n]
                      for n in names], np.int32)
    lins = np.array([warp_linear(names[i // table.shape[1]], float(v))
                     for i, v in enumerate(table.reshape(-1))], np.float64)
    code_of, lin_of = types.Constant(codes), types.Constant(lin_words(lins))
    cs, ps, ls = [], [], []
    for op, magnitude, row, run in stages:
        code = code_of[op]
        if run is not None:  # AutoAugment's stage probability: code 0 skips the stage
            code = code * fn.cast(run, dtype=types.INT32)
        cs.append(code)
        ps.append(magnitude)
        ls.append(lin_of[row])
    # outside AutoGraph (a conditional pipeline would rewrite the numba kernels)
    if normalize is not None:
        from dalinorm.pipelines.augment_cpu import train_step_numba

        mean, std, layout, mirror = normalize
        out_h, out_w, interpolation, erase = step
        images, box = do_not_convert(train_step_numba)(
            images, fn.stack(*cs), fn.stack(*ps), fn.stack(*ls), mirror, out_h=out_h, out_w=out_w,
            mean=mean, std=std, layout=layout, interpolation=interpolation, erase=erase)
        if erase is not None and draws is not None:
            draws.update({"erase_anchor": box[0:2], "erase_shape": box[2:4],
                          "erase_draws": erase[2]})
        return images
    return do_not_convert(policy_numba)(images, fn.stack(*cs), fn.stack(*ps), fn.stack(*ls))


def _color_jitter(images, cj, with_draws: bool):
    """torchvision's ColorJitter: factors drawn uniformly (brightness, contrast, saturation in
    [max(0, 1 − v), 1 + v], hue in [−h, h]), applied in a random order (randperm(4)); an
    operation whose value is 0 is not applied (v2 sets it to None)."""
    import itertools

    import numpy as np

    fn, types, _ = import_dali()
    draws: dict = {}
    factors = {}
    for name in ("brightness", "contrast", "saturation"):
        v = getattr(cj, name)
        if v > 0:
            factors[name] = fn.random.uniform(range=[max(0.0, 1.0 - v), 1.0 + v])
    if cj.hue > 0:
        factors["hue"] = fn.random.uniform(range=[-cj.hue, cj.hue])
    if not factors:
        return images, draws
    adjust = {"brightness": adjust_brightness, "contrast": adjust_contrast,
              "saturation": adjust_saturation, "hue": adjust_hue}
    order = list(factors)
    perms = np.array(list(itertools.permutations(range(len(order)))), dtype=np.int32)
    perm = _uniform_int(len(perms))
    draws["perm"] = perm
    draws.update(factors)
    from nvidia.dali.auto_aug.core import select

    ops = [lambda img, f=adjust[n], x=factors[n]: f(img, x) for n in order]
    for stage in range(len(order)):
        which = types.Constant(perms[:, stage])[perm]
        images = select(ops, which, images) if len(ops) > 1 else ops[0](images)
    return images, draws


def fuses_normalization(cfg: Config, device: str) -> bool:
    """Whether :func:`augment_images` can take the resize, flip, normalization and erasing into
    the CPU's policy operator (``normalize=``, ``resize=``): a policy, no colour jitter, CPU
    images."""
    return (device == "cpu" and cfg.train.auto_augment.policy != "none"
            and not any(v > 0 for v in _jitter_values(cfg)))


def augment_images(images, cfg: Config, *, with_draws: bool = False, stock: bool | None = None,
                   normalize=None, resize=None, erase: bool = False):
    """``train.color_jitter`` then ``train.auto_augment`` on uint8 HWC images (after the crop
    and flip). With ``with_draws``: (images, {name: DataNode}) of the random draws. The policy
    runs as one numba operator on CPU images, as stock DALI operators on GPU images (or with
    ``stock=True``: tests compare the two). ``normalize``: (mean, std in 0–255 units, layout,
    mirror node) and ``resize``: (out_h, out_w, interpolation), only where
    :func:`fuses_normalization`: the CPU train step in one numba operator, from the decoded
    (unresized, unflipped) uint8 crops to float32 tensors: PIL's resize, the flip, the policy,
    the normalization and, with ``erase``, ``train.random_erase`` from :func:`erase_draws`
    (the box as the draws "erase_anchor", "erase_shape"; the draws as "erase_draws")."""
    if stock is None:
        stock = images.device != "cpu"
    if normalize is not None and (stock or not fuses_normalization(cfg, images.device)):
        raise ValueError("augment_images: normalize= needs the CPU policy operator")
    if (resize is None) != (normalize is None) or (erase and resize is None):
        raise ValueError("augment_images: normalize= and resize= go together, erase= needs both")
    step = None
    if resize is not None:
        re = cfg.train.random_erase
        channels = cfg.data.channels
        value = list(re.value) if len(re.value) == channels else [re.value[0]] * channels
        step = (*resize, (value, re.probability, erase_draws(re)) if erase else None)
    draws: dict = {}
    if any(v > 0 for v in _jitter_values(cfg)):
        images, d = _color_jitter(images, cfg.train.color_jitter, with_draws)
        draws.update({f"jitter_{k}": v for k, v in d.items()})
    if cfg.train.auto_augment.policy != "none":
        images, d = _policy(images, cfg.train.auto_augment, with_draws, stock, normalize, step)
        draws.update(d)
    return (images, draws) if with_draws else images


def _jitter_values(cfg: Config) -> tuple[float, ...]:
    cj = cfg.train.color_jitter
    return (cj.brightness, cj.contrast, cj.saturation, cj.hue)


def erase_draws(re):
    """The random draws of torchvision's RandomErasing for one sample, as DALI random operators
    (seeded by the pipeline, restored by its checkpoints): (area fractions U(scale) [10],
    aspects exp(U(log ratio)) [10], the p-coin's, the top's and the left's U[0, 1))."""
    fn, _, _ = import_dali()
    from nvidia.dali import math as dmath

    tries = 10
    area_u = fn.random.uniform(range=list(re.scale), shape=[tries])
    log_lo, log_hi = math.log(re.ratio[0]), math.log(re.ratio[1])
    aspect = dmath.exp(fn.random.uniform(range=[log_lo, log_hi], shape=[tries]))
    coin = fn.random.uniform(range=[0.0, 1.0])
    top_u = fn.random.uniform(range=[0.0, 1.0])
    left_u = fn.random.uniform(range=[0.0, 1.0])
    return area_u, aspect, coin, top_u, left_u


def erase_params(images, re, layout: str, draws=None):
    """torchvision's RandomErasing.get_params per sample, all 10 attempts drawn at once
    (:func:`erase_draws`): area = H·W·U(scale), aspect = exp(U(log ratio)),
    h = round(√(area·aspect)), w = round(√(area/aspect)); the first attempt with h < H and
    w < W is used, its top-left corner uniform over the positions that fit; none fits, or the
    p-coin says no: nothing erased. Returns (anchor, shape) as float [2] (h, w order) per
    sample. Stock operators (the GPU's path; the CPU's is one numba operator,
    :func:`dalinorm.pipelines.augment_cpu.erase_numba`, the same float32 arithmetic)."""
    fn, types, _ = import_dali()
    from nvidia.dali import math as dmath

    tries = 10
    area_u, aspect, coin, top_u, left_u = erase_draws(re) if draws is None else draws
    shape = images.shape(dtype=types.INT32)
    hw = (0, 1) if layout == "HWC" else (1, 2)
    H = fn.cast(shape[hw[0]], dtype=types.FLOAT)
    W = fn.cast(shape[hw[1]], dtype=types.FLOAT)
    area = H * W * area_u
    # Python's round() is half to even; a continuous draw lands on a tie with probability 0
    h = dmath.floor(dmath.sqrt(area * aspect) + 0.5)
    w = dmath.floor(dmath.sqrt(area / aspect) + 0.5)
    fits = (h < H) & (w < W)
    # index of the first attempt that fits (tries when none does)
    import numpy as np

    rank = types.Constant(np.arange(tries, dtype=np.float32))
    first = fn.reductions.min(fits * rank + (fits ^ True) * float(tries))
    chosen = fn.cast(dmath.min(first, float(tries - 1)), dtype=types.INT32)
    found = first < float(tries)
    erase = (coin < re.probability) & found
    eh = h[chosen] * erase
    ew = w[chosen] * erase
    top = dmath.floor(top_u * (H - eh + 1.0))
    left = dmath.floor(left_u * (W - ew + 1.0))
    top = dmath.min(top, H - eh)  # U[0, 1) can round to 1.0 in float32
    left = dmath.min(left, W - ew)
    return fn.stack(top, left), fn.stack(eh, ew)


def erase_images(images, cfg: Config, *, with_draws: bool = False, stock: bool | None = None):
    """``train.random_erase`` on normalized images (CHW or HWC, as ``output.layout``), the box
    filled with ``value`` (per channel, in normalized units: 0 is the mean colour).

    CPU images: one numba operator (:mod:`dalinorm.pipelines.augment_cpu`); GPU images: DALI's
    ``fn.erase`` after the stock-operator box. ``stock=True`` forces the stock path (tests
    compare the two). With ``with_draws``: (images, {"anchor", "shape"}) of the box."""
    fn, types, _ = import_dali()
    re = cfg.train.random_erase
    layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
    channels = cfg.data.channels  # one fill value per channel (DALI's erase requires it)
    value = list(re.value) if len(re.value) == channels else [re.value[0]] * channels
    draws = erase_draws(re)
    if stock is None:
        stock = images.device != "cpu"
    if not stock:
        from nvidia.dali.pipeline import do_not_convert

        from dalinorm.pipelines.augment_cpu import erase_numba

        # outside AutoGraph (a conditional pipeline would rewrite the numba kernels)
        out, box = do_not_convert(erase_numba)(images, draws, re.probability, value, layout)
        out = fn.reshape(out, layout=layout)
        return (out, {"anchor": box[0:2], "shape": box[2:4]}) if with_draws else out
    anchor, shape = erase_params(images, re, layout, draws)
    # the fused CPU resize+normalize sets no layout on its output: name it (no copy)
    images = fn.reshape(images, layout=layout)
    out = fn.erase(images, anchor=anchor, shape=shape, axis_names="HW", fill_value=value,
                   normalized_anchor=False, normalized_shape=False)
    return (out, {"anchor": anchor, "shape": shape}) if with_draws else out


def uses_augmentation(cfg: Config) -> bool:
    """Whether the train graph has per-sample augmentations on uint8 (jitter, a policy)."""
    return cfg.train.auto_augment.policy != "none" or any(v > 0 for v in _jitter_values(cfg))


def needs_conditionals(cfg: Config, device: str = "gpu") -> bool:
    """The policies (stock operators: the GPU's path) and the jitter's random order select
    operations per sample with conditionals: the pipeline must be built with
    ``enable_conditionals=True``. On the CPU (``device`` "cpu") a policy is one numba operator
    and needs none."""
    if device == "cpu":
        return any(v > 0 for v in _jitter_values(cfg))
    return uses_augmentation(cfg)


def describe_augmentation(cfg: Config) -> list[str]:
    """One line per augmentation key, what the train graph does with it (``dalinorm
    validate`` prints these as YAML comments)."""
    aa, cj, re = cfg.train.auto_augment, cfg.train.color_jitter, cfg.train.random_erase
    lines = []
    if aa.policy == "none":
        lines.append("train.auto_augment: none (no automatic augmentation)")
    elif aa.policy == "trivial_augment_wide":
        lines.append(f"train.auto_augment: torchvision TrivialAugmentWide(num_magnitude_bins="
                     f"{aa.num_magnitude_bins}): one of 14 operations per image, a random bin and "
                     f"sign, after crop+flip, on uint8")
    elif aa.policy == "rand_augment":
        lines.append(f"train.auto_augment: torchvision RandAugment(num_ops={aa.num_ops}, "
                     f"magnitude={aa.magnitude}, num_magnitude_bins={aa.num_magnitude_bins}): "
                     f"{aa.num_ops} of 14 operations per image at bin {aa.magnitude}, random sign")
    else:
        lines.append("train.auto_augment: torchvision AutoAugment(AutoAugmentPolicy.IMAGENET): "
                     "one of 25 sub-policies per image, each stage with its probability, 10 bins")
    active = {k: v for k, v in zip(("brightness", "contrast", "saturation", "hue"),
                                   _jitter_values(cfg)) if v > 0}
    if active:
        args = ", ".join(f"{k}={v:g}" for k, v in active.items())
        lines.append(f"train.color_jitter: torchvision ColorJitter({args}) in a random order per "
                     f"image, before the policy")
    else:
        lines.append("train.color_jitter: off (all four values 0)")
    if re.probability > 0:
        lines.append(f"train.random_erase: torchvision RandomErasing(p={re.probability:g}, "
                     f"scale={list(re.scale)}, ratio={[round(r, 4) for r in re.ratio]}, "
                     f"value={list(re.value)}) after normalization (value in normalized units)")
    else:
        lines.append("train.random_erase: off (probability 0)")
    return lines

