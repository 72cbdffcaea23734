"""Write a 16-bit grayscale PNG set for benchmarks (not committed): CT/X-ray-slice-like.

Each image is 512×512 (every 5th 640×512 or 512×640), 16-bit grayscale PNG (zlib level 6,
≈0.35 MB), content procedural: a bright elliptical body on a dark background, smooth
low-frequency structure, a few dense discs and Gaussian noise, spread over 0–65535 with
≈30,000 distinct levels per image, so decode and statistics see real 16-bit data. The split
is an ImageFolder ``<out>/train/<class>/*.png`` (and ``val/`` with --val).

    python benchmarks/make_gray16.py --out /tmp/gray16 --n 400 [--val 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import struct
import zlib
from pathlib import Path

import numpy as np


def write_png16(path: Path, array: np.ndarray) -> None:
    h, w = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def slice_image(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)
    rx, ry = width * rng.uniform(0.3, 0.45), height * rng.uniform(0.3, 0.45)
    body = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
    img = np.full((height, width), 2000.0)
    fx, fy = rng.uniform(1, 5, 2) * 2 * np.pi / max(width, height)
    img[body] = 30000 + 8000 * np.sin(fx * x + fy * y + rng.uniform(0, 6.3))[body]
    for _ in range(4):
        dx, dy = rng.uniform(cx - rx / 2, cx + rx / 2), rng.uniform(cy - ry / 2, cy + ry / 2)
        r = rng.uniform(0.03, 0.1) * min(width, height)
        img[(x - dx) ** 2 + (y - dy) ** 2 < r * r] = rng.uniform(45000, 62000)
    img += rng.normal(0, 900, img.shape)
    return np.clip(np.round(img), 0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--val", type=int, default=0)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for split, n in (("train", args.n), ("val", args.val)):
        for i in range(n):
            folder = args.out / split / f"class_{i % args.classes}"
            folder.mkdir(parents=True, exist_ok=True)
            w, h = ((640, 512), (512, 640))[i // 5 % 2] if i % 5 == 4 else (512, 512)
            write_png16(folder / f"{split}_{i:05d}.png", slice_image(w, h, rng))


if __name__ == "__main__":
    main()
