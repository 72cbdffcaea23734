"""Write an ImageNet-like JPEG set for benchmarks (not committed; ~110 KB per image).

Sizes are mostly 500×375, 375×500 and 500×333 (ImageNet's typical shapes), some up to
640 px on the long side; baseline JPEG at quality 90 with 4:2:0 subsampling; content is
natural photos: random crops, flips and mild colour jitter of the shipped sample photos.
The split is an ImageFolder ``<out>/train/<class>/*.jpg`` (and ``val/`` with --val).

    python benchmarks/make_imagenet_like.py --out /tmp/inet --n 2000 [--val 500] [--seed 0] [--jobs N]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data" / "train"
SHAPES = [((500, 375), 0.45), ((375, 500), 0.25), ((500, 333), 0.2), ((640, 480), 0.05),
          ((480, 640), 0.05)]

log = logging.getLogger("make_imagenet_like")


def _pick_size(rng: random.Random) -> tuple[int, int]:
    sizes, weights = zip(*SHAPES)
    return rng.choices(sizes, weights=weights)[0]


def make_image(source: Image.Image, rng: random.Random) -> Image.Image:
    """A random crop of ``source``, resized to an ImageNet-like size, maybe flipped, jittered."""
    w, h = source.size
    area = rng.uniform(0.35, 1.0) * w * h
    aspect = rng.uniform(0.75, 1.33)
    cw = max(16, min(w, int(round((area * aspect) ** 0.5))))
    ch = max(16, min(h, int(round((area / aspect) ** 0.5))))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = source.crop((x, y, x + cw, y + ch)).resize(_pick_size(rng), Image.BICUBIC)
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.85, 1.15))
    # sensor-like grain: upscaled crops are smoother than camera photos, and JPEG size and
    # decode cost depend on the high frequencies
    noise = np.random.default_rng(rng.getrandbits(32)).normal(0, 5.0, (img.height, img.width, 1))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def _write_range(out: Path, start: int, stop: int, seed: int) -> None:
    sources = sorted(SAMPLES.glob("*/*.jpg"))
    if not sources:
        raise SystemExit(f"no sample photos under {SAMPLES}")
    photos = [(p.parent.name, Image.open(p).convert("RGB")) for p in sources]
    for i in range(start, stop):
        rng = random.Random(seed * 1_000_003 + i)  # per image: the same set whatever --jobs
        cls, photo = photos[i % len(photos)]
        folder = out / cls
        folder.mkdir(parents=True, exist_ok=True)
        make_image(photo, rng).save(folder / f"{i:06d}.jpg", quality=90, subsampling=2)


def write_split(out: Path, n: int, seed: int, jobs: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(1, -(-n // (jobs * 4)))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_write_range, out, s, min(n, s + chunk), seed) for s in range(0, n, chunk)]
        for done, future in enumerate(futures, start=1):
            future.result()
            log.info("%s: %d/%d", out, min(n, done * chunk), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=2000, help="training images")
    parser.add_argument("--val", type=int, default=0, help="validation images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_split(args.out / "train", args.n, args.seed, args.jobs)
    if args.val:
        write_split(args.out / "val", args.val, args.seed + 1, args.jobs)
    log.info("wrote %d train and %d val images under %s", args.n, args.val, args.out)


if __name__ == "__main__":
    main()
