"""What each per-sample augmentation costs: CPU ms per image of the DALI graph's operation
(pipelines/augment.py, DALI's CPU backend, one thread) as stock DALI operators (the GPU's
path) and as the CPU's numba operator (pipelines/augment_cpu.py, what the CPU graph runs), next
to torchvision's functional op on the PIL image (what the reference DataLoader's workers run),
on 176² uint8 images (the torchvision recipe's train crop), plus the policies and the erasing
as the train graph runs them.

    python benchmarks/augment_cost.py [--batch 64] [--repeat 5] [--size 176]

CPU time (process_time: all of the process's threads), so other load on the machine changes
the figures little; each row is the best of 3 rounds, minus the same pipeline's cost without
the operation (a copy in, a copy out). Prints one JSON line per row, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from testkit import natural_image  # noqa: E402

# (operation, parameter as pipelines/augment.apply_op takes it, torchvision's call on PIL)
OPS = [
    ("Identity", 0.0), ("ShearX", 0.3), ("ShearY", 0.3), ("TranslateX", 0.2), ("TranslateY", 0.2),
    ("Rotate", 20.0), ("Brightness", 1.5), ("Color", 1.5), ("Contrast", 1.5), ("Sharpness", 1.5),
    ("Posterize", 4.0), ("Solarize", 128.0), ("AutoContrast", 0.0), ("Equalize", 0.0), ("Invert", 0.0),
]


def torchvision_call(op: str, param: float):
    import torchvision.transforms.v2.functional as F
    from torchvision.transforms.v2 import InterpolationMode

    bil = InterpolationMode.BILINEAR
    return {
        "Identity": lambda im: im,
        "ShearX": lambda im: F.affine(im, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                                      shear=[math.degrees(math.atan(param)), 0.0], interpolation=bil),
        "ShearY": lambda im: F.affine(im, angle=0.0, translate=[0, 0], scale=1.0, center=[0, 0],
                                      shear=[0.0, math.degrees(math.atan(param))], interpolation=bil),
        "TranslateX": lambda im: F.affine(im, angle=0.0, translate=[int(param * im.width), 0],
                                          scale=1.0, shear=[0.0, 0.0], interpolation=bil),
        "TranslateY": lambda im: F.affine(im, angle=0.0, translate=[0, int(param * im.height)],
                                          scale=1.0, shear=[0.0, 0.0], interpolation=bil),
        "Rotate": lambda im: F.rotate(im, angle=param, interpolation=bil),
        "Brightness": lambda im: F.adjust_brightness(im, param),
        "Color": lambda im: F.adjust_saturation(im, param),
        "Contrast": lambda im: F.adjust_contrast(im, param),
        "Sharpness": lambda im: F.adjust_sharpness(im, param),
        "Posterize": lambda im: F.posterize(im, int(param)),
        "Solarize": lambda im: F.solarize(im, param),
        "AutoContrast": lambda im: F.autocontrast(im),
        "Equalize": lambda im: F.equalize(im),
        "Invert": lambda im: F.invert(im),
    }[op]


def _cpu_ms(call, repeat: int, per: int) -> float:
    call()  # build / warm up
    best = []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(repeat):
            call()
        best.append((time.process_time() - t0) / repeat)
    return 1000 * min(best) / per


def dali_cost(images, build, repeat: int) -> float:
    """CPU ms per image of one run of the pipeline ``build(x)`` makes from the images."""
    from nvidia.dali import fn
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=len(images), num_threads=1, device_id=None, seed=3,
                    prefetch_queue_depth=1)
    with pipe:
        x = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        pipe.set_outputs(build(x))
    pipe.build()
    return _cpu_ms(pipe.run, repeat, len(images))


def conditional_cost(images, cfg, repeat: int, erase: bool = False, stock: bool = True) -> float:
    from nvidia.dali import fn, pipeline_def

    from dalinorm.pipelines import augment

    @pipeline_def(enable_conditionals=True, batch_size=len(images), num_threads=1,
                  device_id=None, seed=3, prefetch_queue_depth=1)
    def graph():
        x = fn.external_source(source=lambda: images, batch=True, layout="HWC")
        if erase:
            x = fn.crop_mirror_normalize(x, output_layout="CHW", mean=[0.0], std=[255.0])
            return augment.erase_images(x, cfg, stock=stock)
        return augment.augment_images(x, cfg, stock=stock)

    pipe = graph()
    pipe.build()
    return _cpu_ms(pipe.run, repeat, len(images))


def main() -> None:
    from dalinorm.config import config_from_dict
    from dalinorm.pipelines import augment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=176)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    images = [natural_image(args.size, args.size, rng) for _ in range(args.batch)]
    pils = [Image.fromarray(a) for a in images]
    rows = []
    base = dali_cost(images, lambda x: x, args.repeat)
    for op, param in OPS:
        from nvidia.dali import fn

        def build(x, op=op, param=param):
            p = fn.external_source(source=_const([np.float32(param)] * len(images)), batch=True)
            return augment.apply_op(x, op, p, policy="rand_augment")

        def build_numba(x, op=op, param=param):
            from nvidia.dali import types

            from dalinorm.pipelines.augment_cpu import OP_CODES, lin_words, policy_numba, warp_linear

            code = OP_CODES[f"{op}@side" if op.startswith("Translate") else op]
            return policy_numba(x, types.Constant(np.array([code], np.int32)),
                                types.Constant(np.array([param], np.float32)),
                                types.Constant(lin_words(np.array([warp_linear(op, param)]))))

        ours = dali_cost(images, build, args.repeat) - base
        fast = dali_cost(images, build_numba, args.repeat) - base
        call = torchvision_call(op, param)
        theirs = _cpu_ms(lambda: [call(im) for im in pils], args.repeat, len(pils))
        rows.append({"operation": op, "dali_ms": round(ours, 3), "numba_ms": round(fast, 3),
                     "torchvision_pil_ms": round(theirs, 3)})
        print(json.dumps(rows[-1]), flush=True)
    from torchvision.transforms import v2

    policies = [
        ("TrivialAugmentWide", {"auto_augment": "trivial_augment_wide"}, v2.TrivialAugmentWide()),
        ("RandAugment(2, 9)", {"auto_augment": "rand_augment"}, v2.RandAugment()),
        ("AutoAugment(IMAGENET)", {"auto_augment": "auto_augment_imagenet"},
         v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)),
        ("ColorJitter(0.4, 0.4, 0.4, 0.1)",
         {"color_jitter": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}},
         v2.ColorJitter(0.4, 0.4, 0.4, 0.1)),
    ]
    for name, train, ref in policies:
        cfg = config_from_dict({"train": train})
        ours = conditional_cost(images, cfg, args.repeat) - base
        fast = conditional_cost(images, cfg, args.repeat, stock=False) - base  # jitter: stock
        theirs = _cpu_ms(lambda: [ref(im) for im in pils], args.repeat, len(pils))
        rows.append({"operation": name, "dali_ms": round(ours, 3), "numba_ms": round(fast, 3),
                     "torchvision_pil_ms": round(theirs, 3)})
        print(json.dumps(rows[-1]), flush=True)
    cfg = config_from_dict({"train": {"random_erase": 0.5}})
    with_erase = conditional_cost(images, cfg, args.repeat, erase=True)
    with_erase_numba = conditional_cost(images, cfg, args.repeat, erase=True, stock=False)
    from nvidia.dali import fn

    norm_only = dali_cost(images, lambda x: fn.crop_mirror_normalize(
        x, output_layout="CHW", mean=[0.0], std=[255.0]), args.repeat)
    tensors = [v2.functional.to_dtype(v2.functional.pil_to_tensor(im), torch.float32, scale=True)
               for im in pils]
    erase = v2.RandomErasing(p=0.5)
    theirs = _cpu_ms(lambda: [erase(t) for t in tensors], args.repeat, len(tensors))
    rows.append({"operation": "RandomErasing(p=0.5), float CHW", "dali_ms": round(with_erase - norm_only, 3),
                 "numba_ms": round(with_erase_numba - norm_only, 3), "torchvision_pil_ms": round(theirs, 3)})
    print(json.dumps(rows[-1]), flush=True)
    print(f"\n| operation ({args.size}², CPU ms per image, one thread) | stock DALI operators "
          f"(GPU path) | numba operator (CPU path) | torchvision |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['operation']} | {r['dali_ms']:.3f} | {r['numba_ms']:.3f} | {r['torchvision_pil_ms']:.3f} |")


def _const(batch):
    return lambda: batch


if __name__ == "__main__":
    main()
