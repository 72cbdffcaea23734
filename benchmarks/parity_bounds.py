"""Measure eval parity (max / mean uint8 levels) of each ``loader.resize`` on natural-like
images and the sample data: the figures behind commands/parity.py's TOLERANCES.

    python benchmarks/parity_bounds.py [OUT_DIR] [--resize fast pil_dali pil] [--device gpu]
                                       [--interpolation bicubic]

Writes 120 natural-like JPEGs (tests/testkit.py ``natural_image``: 60–700 px, quality 50–95,
4:2:0 and 4:4:4, 20% progressive, 10% grayscale) to OUT_DIR, then prints one JSON line per
(data, split, eval geometry, resize) with the worst channel's max and mean levels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from dalinorm.commands.parity import run_eval_parity  # noqa: E402
from testkit import make_config, natural_image  # noqa: E402


def write_natural(root: Path, n: int = 120, seed: int = 2026) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = int(rng.integers(60, 700)), int(rng.integers(60, 700))
        folder = root / "val" / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(natural_image(w, h, rng))
        kw = dict(quality=int(rng.integers(50, 96)), progressive=bool(rng.random() < 0.2),
                  subsampling=int(rng.choice([0, 2])))
        if rng.random() < 0.1:
            img = img.convert("L")
        img.save(folder / f"n{i:03d}_{w}x{h}.jpg", **kw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="/tmp/parity_bounds")
    parser.add_argument("--resize", nargs="+", default=["fast", "pil_dali", "pil"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="loader.device")
    parser.add_argument("--interpolation", default="bilinear", choices=["bilinear", "bicubic"],
                        help="eval.interpolation (the reference uses the same filter)")
    args = parser.parse_args()
    natural = Path(args.out) / "natural"
    if not natural.exists():
        write_natural(natural)
    sample = REPO / "sample_data"
    cases = [(natural, "val", 256, 224), (natural, "val", 146, 128), (natural, "val", 80, 64),
             (sample, "val", 146, 128), (sample, "train", 146, 128), (sample, "val", 256, 224),
             (sample, "train", 256, 224)]
    for root, split, shorter, crop in cases:
        for resize in args.resize:
            cfg = make_config(root, f"loader.resize={resize}", f"loader.device={args.device}", f"eval.resize_shorter={shorter}",
                              f"eval.crop={crop}", "loader.batch_size=8",
                              f"eval.interpolation={args.interpolation}")
            report = run_eval_parity(cfg, split=split)
            print(json.dumps({"data": root.name, "split": split, "eval": f"{shorter}/{crop}",
                              "resize": resize, "interpolation": args.interpolation,
                              "images": report.num_images,
                              "max_levels": round(max(report.max_levels), 4),
                              "mean_levels": round(max(report.mean_levels), 5),
                              "passed": report.passed}), flush=True)


if __name__ == "__main__":
    main()
