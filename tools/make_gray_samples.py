"""Build the grayscale samples that ship with dalinorm: 8-bit (``sample_data/gray``) and
16-bit (``sample_data/gray16``), from CC0 / public-domain images that scikit-image ships in
its wheel (``skimage/data``; read from the folder, nothing is downloaded).

Classes (one per source group, ImageFolder layout ``<out>/<split>/<class>/<name>``):

* ``scene``: ``camera.png`` (CC0, Lav Varshney), ``coins.png`` (Brooklyn Museum, no known
  copyright restrictions), ``text.png`` (public domain);
* ``texture``: ``brick.png``, ``grass.png``, ``gravel.png`` (CC0Textures, CC0);
* 16-bit only: ``cell`` (``cell.png``, quantitative phase image, CC0) and ``retina``
  (``microaneurysms.png``, HRF fundus database, CC0 by Andreas Maier) replace ``scene``
  and ``texture`` (the kinds 16-bit data come from: microscopy, medical imaging).

8-bit: random crops (35–90 % of the side, aspect 3:4–4:3) resized to a long side of
96–160 px with Pillow's bilinear filter, saved as 8-bit grayscale PNG; one training image
per class is saved as an RGB PNG (the gray crop tinted), so the sample shows an RGB file in
a grayscale dataset being converted (``convert("L")``).

16-bit (derived from the 8-bit images, said here and in LICENSES.md): each crop is
box-averaged 3×3 in float64 (nine 8-bit samples per output pixel: 2,296 possible means
instead of 256), passed through a tone curve ``65535 · t ** 0.8`` after a per-image
contrast stretch between its 0.2 and 99.8 percentiles, and rounded to uint16. The result
uses the 16-bit range (0–65535, 240–1,400 distinct levels per image where the 8-bit crop had
at most 256; under 2% of the samples are multiples of 257). Half
the images are 16-bit PNG, half 16-bit TIFF (``I;16``).

Usage (scikit-image needed only here; e.g. unpack its wheel, ``pip download --no-deps
scikit-image==0.26.0`` then ``unzip ... 'skimage/data/*'``)::

    python tools/make_gray_samples.py --skimage-data /path/to/skimage/data

Deterministic for a given ``--seed`` (and Pillow version). Rewrites the PNG/TIFF files under
``<out>/gray`` and ``<out>/gray16`` (and their LICENSES.md); nothing else is touched.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SOURCES_8 = {"scene": ["camera.png", "coins.png", "text.png"],
             "texture": ["brick.png", "grass.png", "gravel.png"]}
SOURCES_16 = {"cell": ["cell.png"], "retina": ["microaneurysms.png"]}
CREDITS = {
    "camera.png": ("Lav Varshney (photographer)", "CC0 (\"No copyright restrictions. CC0 by the photographer\")"),
    "coins.png": ("Brooklyn Museum Collection", "No known copyright restrictions"),
    "text.png": ("Wikipedia, File:Corner.png", "Public domain (\"No known copyright restrictions, released into the public domain\")"),
    "brick.png": ("CC0Textures, Bricks25", "CC0"),
    "grass.png": ("CC0Textures", "CC0"),
    "gravel.png": ("CC0Textures, Gravel04", "CC0"),
    "cell.png": ("Paul Müller et al., Optics Express 26(8) 2018 (qpformat)", "CC0 (\"dedicated to the public domain\")"),
    "microaneurysms.png": ("HRF Image Database, image 07_dr (Andreas Maier)", "CC0 (\"CC0 given by owner\")"),
}


def write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit grayscale PNG written by hand (IHDR bit depth 16, big-endian samples)."""
    h, w = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _crop(img: Image.Image, rng: np.random.Generator, long_side: int) -> Image.Image:
    w, h = img.size
    side = rng.uniform(0.35, 0.9) * min(w, h)
    aspect = rng.uniform(3 / 4, 4 / 3)
    cw, ch = int(min(w, side * aspect ** 0.5)), int(min(h, side / aspect ** 0.5))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = img.crop((x, y, x + cw, y + ch))
    scale = long_side / max(cw, ch)
    return crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BILINEAR)


def _sixteen(gray8: np.ndarray) -> np.ndarray:
    h, w = gray8.shape[0] // 3 * 3, gray8.shape[1] // 3 * 3
    x = gray8[:h, :w].astype(np.float64).reshape(h // 3, 3, w // 3, 3).mean(axis=(1, 3))
    lo, hi = np.percentile(x, [0.2, 99.8])
    t = np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)
    return np.round(65535 * t ** 0.8).astype(np.uint16)


def build(data: Path, out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = {"train": 6, "val": 2}
    for kind, sources in (("gray", SOURCES_8), ("gray16", SOURCES_16)):
        target = out / kind
        for split in counts:
            shutil.rmtree(target / split, ignore_errors=True)
        for label, files in sources.items():
            images = [Image.open(data / f).convert("L") for f in files]
            for split, n in counts.items():
                folder = target / split / label
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(n):
                    src = images[i % len(images)]
                    if kind == "gray":
                        crop = _crop(src, rng, int(rng.integers(96, 161)))
                        if split == "train" and i == 0:  # an RGB file in the gray dataset
                            g = np.asarray(crop, np.float64)
                            tint = np.stack([g, g * 0.85 + 20, g * 0.7 + 40], -1).clip(0, 255)
                            Image.fromarray(tint.astype(np.uint8), "RGB").save(folder / f"{label}_{i:02d}_rgb.png", optimize=True)
                        else:
                            crop.save(folder / f"{label}_{i:02d}.png", optimize=True)
                    else:
                        crop = _crop(src, rng, int(rng.integers(240, 331)))
                        sixteen = _sixteen(np.asarray(crop))
                        if i % 2 == 0:
                            write_png16(folder / f"{label}_{i:02d}.png", sixteen)
                        else:
                            Image.fromarray(sixteen).save(folder / f"{label}_{i:02d}.tif", compression="tiff_adobe_deflate")
        _licences(target, sources, derived16=kind == "gray16")


def _licences(target: Path, sources: dict, *, derived16: bool) -> None:
    lines = ["# Sample data: sources and licences", "",
             f"Written by `tools/make_gray_samples.py` from images that scikit-image 0.26.0 ships in its wheel",
             "(`skimage/data`), credits and licences as its docstrings state them. Every image is a crop,",
             "resized with Pillow's bilinear filter." + (
                 " The 16-bit images are DERIVED FROM 8-BIT SOURCES: 3×3 box-averaged in float64, contrast-"
                 "stretched between the 0.2 and 99.8 percentiles, tone-mapped (t ** 0.8) and rounded to uint16, so "
                 "they span 0-65535 with 240-1,400 distinct levels each; the extra bits are interpolation, not measurement."
                 if derived16 else
                 " One training image per class is the gray crop tinted to RGB (to show conversion)."),
             "The derived images are distributed under the same terms as their sources (all CC0 or public domain).",
             ""]
    for label, files in sources.items():
        lines.append(f"## `{label}`")
        lines.append("")
        for f in files:
            who, licence = CREDITS[f]
            lines.append(f"- `skimage/data/{f}`: {who}. Licence: {licence}. Stated in: docstring of `skimage.data`.")
        lines.append("")
    (target / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skimage-data", type=Path, required=True, help="the skimage/data folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build(args.skimage_data, args.out, args.seed)


if __name__ == "__main__":
    main()
