"""Write an 8-band .npy ImageFolder tree for `dalinorm bench` (data.format: numpy).

    python benchmarks/make_multiband_npy.py OUT [--train 512] [--val 128] [--bands 8]
        [--dtype uint16] [--layout CHW] [--size 256]

Each array is textured like a satellite tile (smooth fields of different scales per band,
sharp-edged parcels, sensor noise), side lengths drawn from 0.75–1.25 × --size, portrait and
landscape, 4 classes. Also writes OUT/bench.yaml, a config for it (eval 256 → 224, train 224,
per-band mean/std given). Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def tile(h: int, w: int, bands: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    out = np.empty((h, w, bands), np.float32)
    for b in range(bands):
        fx, fy = rng.uniform(1, 12, 2)
        out[..., b] = 0.5 + 0.25 * np.sin(2 * np.pi * (fx * x + fy * y) + b) * np.cos(3 * fy * x)
    for _ in range(6):  # parcels: rectangles with their own spectrum
        top, left = rng.integers(0, h), rng.integers(0, w)
        out[top:top + h // 5, left:left + w // 4] = rng.uniform(0.1, 0.9, bands)
    out += rng.normal(0, 0.02, out.shape).astype(np.float32)
    out = np.clip(out, 0, 1)
    if dtype == "float32":
        return out
    top = 65535 if dtype == "uint16" else 255
    return np.round(out * top).astype(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--val", type=int, default=128)
    parser.add_argument("--bands", type=int, default=8)
    parser.add_argument("--dtype", default="uint16", choices=["uint8", "uint16", "float32"])
    parser.add_argument("--layout", default="CHW", choices=["HWC", "CHW"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    classes = ["cropland", "forest", "urban", "water"]
    for split, count in (("train", args.train), ("val", args.val)):
        for i in range(count):
            h, w = (int(args.size * rng.uniform(0.75, 1.25)) for _ in range(2))
            folder = args.out / split / classes[i % len(classes)]
            folder.mkdir(parents=True, exist_ok=True)
            a = tile(h, w, args.bands, args.dtype, rng)
            np.save(folder / f"tile_{i:05d}.npy", a.transpose(2, 0, 1) if args.layout == "CHW" else a)
    mean = [0.5] * args.bands
    std = [0.2] * args.bands
    (args.out / "bench.yaml").write_text(
        f"data: {{root: ., format: numpy, layout: {args.layout}, channels: {args.bands}, "
        f"dtype: {args.dtype}}}\n"
        "loader: {batch_size: 64, num_threads: 2, device: auto, drop_last: true}\n"
        "train: {size: 224}\neval: {resize_shorter: 256, crop: 224}\n"
        f"normalize: {{source: values, mean: {mean}, std: {std}}}\n")


if __name__ == "__main__":
    main()
