"""What bicubic costs next to bilinear: CPU ms per image of the CPU's exact resize (the numba
kernel of pipelines/resample.py, the same code the DALI operator runs), one thread, on
ImageNet-sized shapes; Pillow's own Image.resize beside it for scale.

    python benchmarks/interpolation_cost.py [--repeat 200] [--root /tmp/inet]

Shapes: train, a RandomResizedCrop window of a 500×375 photo (torchvision's mean window at
scale (0.08, 1): ≈54% of the area) resized to 224²; eval, 500×375 → Resize(256) → the 224²
center window (only the window computed). Prints one JSON line per (recipe, filter). With
``--root`` (an ImageFolder with train/ and val/, e.g. benchmarks/make_imagenet_like.py's), also
whole ``DaliLoader`` epochs per filter, one DALI thread, CPU ms per image after a warm-up epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from testkit import natural_image  # noqa: E402


def _ms(call, repeat: int) -> float:
    call()  # compile / warm up
    best = []
    for _ in range(3):
        t0 = time.process_time()  # CPU time: robust to other processes on a shared machine
        for _ in range(repeat):
            call()
        best.append((time.process_time() - t0) / repeat)
    return 1000 * min(best)


def main() -> None:
    from numba import set_num_threads

    from dalinorm.pipelines.resample import resample_into

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--root", help="also time DaliLoader epochs over this ImageFolder root")
    args = parser.parse_args()
    set_num_threads(1)
    rng = np.random.default_rng(0)
    photo = natural_image(500, 375, rng)
    crop = np.ascontiguousarray(photo[40:40 + 275, 60:60 + 367])  # 367×275 ≈ 54% of the area
    out = np.empty((224, 224, 3), np.uint8)
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    for recipe, img, full, window in (("train", crop, (224, 224), (0, 0)),
                                      ("eval", photo, (256, 341), (16, 58))):
        for name, pil_filter in filters.items():
            exact = _ms(lambda: resample_into(out, img, full[0], full[1], *window,
                                              interpolation=name), args.repeat)
            pil_image = Image.fromarray(img)
            pil = _ms(lambda: pil_image.resize(full[::-1], pil_filter), args.repeat)
            print(json.dumps({"recipe": recipe, "interpolation": name, "input": list(img.shape[:2]),
                              "resized_to": list(full), "numba_ms": round(exact, 3),
                              "pillow_full_resize_ms": round(pil, 3)}), flush=True)
    if args.root:
        _loader_epochs(args.root)


def _loader_epochs(root: str) -> None:
    from testkit import make_config

    from dalinorm import DaliLoader

    for split in ("train", "val"):
        for name in ("bilinear", "bicubic", "bilinear", "bicubic"):  # twice: the spread
            cfg = make_config(Path(root), f"train.interpolation={name}", f"eval.interpolation={name}",
                              "train.size=224", "train.scale=[0.08, 1.0]", "eval.resize_shorter=256",
                              "eval.crop=224", "loader.batch_size=100", "loader.num_threads=1")
            loader = DaliLoader(cfg, split)
            for _ in loader:  # warm-up epoch (and the operator's compilation)
                pass
            images, cpu0 = 0, time.process_time()
            for x, _ in loader:
                images += x.shape[0]
            time.sleep(1.0)  # the prefetch after the last batch is charged too
            loader.close()
            print(json.dumps({"loader": split, "interpolation": name, "images": images,
                              "cpu_ms_per_image": round(1000 * (time.process_time() - cpu0) / images, 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
