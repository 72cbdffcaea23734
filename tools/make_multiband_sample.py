"""Build the small 8-band sample (``sample_data/multiband``): arrays for ``data.format: numpy``.

What it is, honestly: **not multispectral data**. No permissively licensed multispectral image
ships inside a well-known Python wheel, so the 8 bands are computed from three RGB photographs
that scikit-image ships (public domain or CC0, see ``LICENSES.md`` next to the arrays). Each
array is a random crop of one photograph, resized with Pillow (bilinear) to 32–48 pixels a
side, and turned into 8 uint16 bands (every band scaled to the full 16-bit range):

====  ==========================================================================
band  what
====  ==========================================================================
0–2   R, G, B: 8-bit value × 257 (the exact 8 → 16-bit mapping)
3     luma (0.299 R + 0.587 G + 0.114 B) × 257, rounded
4     saturation (max − min of R, G, B) × 257
5     R − B, offset by half the range: (R − B + 255) × 128.5, rounded
6     gradient magnitude of the luma (central differences), × 2·257, clipped
7     local mean of the luma (5 × 5 box, edges repeated) × 257, rounded
====  ==========================================================================

so the bands are correlated as real bands are, have distinct means and spreads, and a crop,
flip or swapped band changes the numbers. Classes are the photographs (``hubble``,
``tissue``, ``retina``); arrays are stored CHW (``data.layout: CHW``), 5 training and 2
validation arrays per class. The output is deterministic for a given ``--seed``.

Requirements (for this script only, not for the package; a scratch venv is fine)::

    pip install numpy pillow scikit-image

Usage, from the repository root::

    python tools/make_multiband_sample.py            # writes sample_data/multiband
"""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "sample_data" / "multiband"

# class → (skimage.data function, file inside the wheel, credit, licence as skimage states it)
SOURCES = {
    "hubble": ("hubble_deep_field", "hubble_deep_field.jpg", "NASA (HubbleSite, release 2012-37)",
               "Public domain (\"captured by NASA and may be freely used in the public domain\")"),
    "tissue": ("immunohistochemistry", "ihc.png", "Center for Microscopy And Molecular Imaging "
               "(CMMI)", "No known copyright restrictions"),
    "retina": ("retina", "retina.jpg", "Mikael Häggström (Wikimedia Commons, Fundus photograph "
               "of normal left eye)", "CC0 1.0 Universal Public Domain Dedication"),
}
TRAIN, VAL = 5, 2


def eight_bands(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 → [H, W, 8] uint16, the bands of the module docstring."""
    x = rgb.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    gy, gx = np.gradient(luma)
    padded = np.pad(luma, 2, mode="edge")
    local = sum(padded[i:i + luma.shape[0], j:j + luma.shape[1]]
                for i in range(5) for j in range(5)) / 25.0
    bands = [r * 257, g * 257, b * 257, luma * 257, (x.max(-1) - x.min(-1)) * 257,
             (r - b + 255) * 128.5, np.hypot(gx, gy) * 2 * 257, local * 257]
    return np.stack([np.clip(np.round(v), 0, 65535) for v in bands], -1).astype(np.uint16)


def crop_resize(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 0.8))
    aspect = rng.uniform(0.7, 1.4)
    ch, cw = min(h, int(side / np.sqrt(aspect))), min(w, int(side * np.sqrt(aspect)))
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out_h, out_w = int(rng.integers(32, 49)), int(rng.integers(32, 49))
    crop = Image.fromarray(photo[top:top + ch, left:left + cw])
    return np.asarray(crop.resize((out_w, out_h), Image.BILINEAR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import skimage.data

    rng = np.random.default_rng(args.seed)
    for old in args.out.glob("*/*/*.npy"):
        old.unlink()
    for name, (function, _, _, _) in SOURCES.items():
        photo = getattr(skimage.data, function)()
        for split, count in (("train", TRAIN), ("val", VAL)):
            folder = args.out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                bands = eight_bands(crop_resize(photo, rng))
                np.save(folder / f"{name}_{i:02d}.npy", np.ascontiguousarray(bands.transpose(2, 0, 1)))
    version = metadata.version("scikit-image")
    lines = ["# 8-band sample: sources and licences", "",
             "Every array under `train/` and `val/` was computed by `tools/make_multiband_sample.py`",
             "from one of the photographs below (a random crop, resized with Pillow, turned into 8",
             "uint16 bands derived from its RGB values; the script's docstring lists the bands).",
             "They are **not** multispectral measurements. The class folder names the photograph.",
             "The derived arrays are distributed under the same terms as their source.", ""]
    for name, (function, file, credit, licence) in SOURCES.items():
        lines += [f"## `{name}`", "",
                  f"- Source file: `skimage/data/{file}` from the `scikit-image` package (version {version})",
                  f"- Author / credit: {credit}",
                  f"- Licence: {licence}",
                  f"- Stated in: docstring of `skimage.data.{function}`", ""]
    (args.out / "LICENSES.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
