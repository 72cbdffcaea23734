"""Measure the array graphs' parity residuals (data.format: numpy) against np.load +
torchvision.transforms.v2: the numbers behind commands/parity.py's ARRAY_TOLERANCES.

    PYTHONPATH=... python benchmarks/array_parity_bounds.py [--device cpu|gpu]

Writes 10 mixed-size 8-band arrays per split (tests/test_arrays.py's generator) for each seed
and eval geometry, and prints per dtype the max |DALI − reference| on the data's scale inside
the output and on its outermost rows and columns.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_arrays as kit  # noqa: E402  (the test's generator: the same arrays)
from dalinorm.integration.loader import DaliLoader  # noqa: E402
from dalinorm.integration.reference import reference_loader  # noqa: E402

GEOMETRIES = [(30, 28), (30, 30), (64, 48), (17, 17)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    std = torch.tensor(kit.STD).view(1, -1, 1, 1)
    for dtype in ("uint8", "uint16", "float32"):
        inside, edge = [], []
        for seed in range(args.seeds):
            for resize, crop in GEOMETRIES:
                root = Path(tempfile.mkdtemp(prefix="array-parity-"))
                kit.write_array_tree(root, dtype, "HWC", seed=seed)
                cfg = kit.array_config(root, dtype, loader={"device": args.device},
                                       eval={"resize_shorter": resize, "crop": crop})
                for (a, _), (b, _) in zip(DaliLoader(cfg, "val"),
                                          reference_loader(cfg, "val", num_workers=0)):
                    d = (a.cpu() - b).abs() * std
                    inside.append(float(d[..., 1:-1, 1:-1].max()))
                    edge.append(float(d.max()))
        print(f"{args.device} {dtype}: inside max {max(inside):.2e}, with edges max {max(edge):.2e}")


if __name__ == "__main__":
    main()
