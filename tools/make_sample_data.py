"""Build the small real-photo sample dataset that ships with ``dalinorm``.

The dataset is derived from a handful of permissively licensed photographs
that well-known Python packages ship inside their wheels, so it can be rebuilt
offline without downloading anything:

* scikit-image ``skimage/data``: ``astronaut.png`` (public domain),
  ``chelsea.png`` (CC0), ``coffee.png`` (CC0), ``rocket.jpg`` (public domain);
* matplotlib ``mpl-data/sample_data/grace_hopper.jpg`` (public domain);
* scikit-learn ``sklearn/datasets/images``: ``china.jpg`` and ``flower.jpg``
  (CC BY 2.0, attribution required).

Each source photo becomes one class.  For every class the script writes
``--train-per-class`` training and ``--val-per-class`` validation JPEGs in
torchvision ``ImageFolder`` layout::

    <out>/train/<class>/<class>_NN.jpg
    <out>/val/<class>/<class>_NN.jpg

Every image is a random crop (30-100 % of the photo's area, aspect ratio
between 3:5 and 5:3, both portrait and landscape in each class and split),
occasionally flipped horizontally, mildly jittered in brightness, contrast
and saturation, and resized so that its long side lies between 160 and 480
pixels.  A few images are converted to grayscale (at least one per split).
Images are saved as baseline JPEG, quality 90, 4:2:0 chroma subsampling,
without metadata.  ``<out>/LICENSES.md`` records the provenance and licence
of every source photo.

The output is deterministic for a given ``--seed`` (and Pillow version).
Re-running the script first deletes the ``*.jpg`` files it manages under
``<out>/train/<class>/`` and ``<out>/val/<class>/``; nothing else is removed.

Requirements (only for running this script, not for the package)::

    pip install pillow numpy scikit-image matplotlib scikit-learn

Usage, from the repository root::

    python tools/make_sample_data.py                 # writes ./sample_data
    python tools/make_sample_data.py --out /tmp/sd --seed 1
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

LOGGER = logging.getLogger("make_sample_data")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "sample_data"

MIN_LONG_SIDE = 160
MAX_LONG_SIDE = 480
MIN_AREA_FRACTION = 0.30
MAX_AREA_FRACTION = 1.00
# Aspect ratio (width / height) ranges for the two orientations.
LANDSCAPE_RATIO = (1.10, 5.0 / 3.0)
PORTRAIT_RATIO = (3.0 / 5.0, 0.90)
FLIP_PROBABILITY = 0.3
GRAYSCALE_PROBABILITY = 0.04
JITTER = 0.15  # brightness/contrast/saturation factors in [1 - JITTER, 1 + JITTER]
MAX_UPSCALE = 1.25  # do not enlarge a crop by more than this (unless below MIN_LONG_SIDE)
JPEG_OPTIONS: dict[str, object] = {
    "format": "JPEG",
    "quality": 90,
    "subsampling": 2,  # 4:2:0
    "progressive": False,
    "optimize": False,
}
SIZE_BUDGET_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class SourcePhoto:
    """One source photograph and what its shipping package says about it."""

    class_name: str
    package: str  # distribution name, for the version in LICENSES.md
    package_path: str  # path of the file inside the installed package
    locate: Callable[[], Path]
    title: str
    credit: str
    licence: str
    licence_source: str  # where the package states the credit/licence
    original_url: str


def _skimage_file(name: str) -> Callable[[], Path]:
    """Return a locator for a file in scikit-image's bundled data directory."""

    def locate() -> Path:
        import skimage.data

        return Path(skimage.data.data_dir) / name

    return locate


def _matplotlib_sample(name: str) -> Callable[[], Path]:
    """Return a locator for a file in matplotlib's ``sample_data`` directory."""

    def locate() -> Path:
        from matplotlib import cbook

        return Path(cbook.get_sample_data(name, asfileobj=False))

    return locate


def _sklearn_sample_image(name: str) -> Callable[[], Path]:
    """Return a locator for one of scikit-learn's bundled sample images."""

    def locate() -> Path:
        from sklearn.datasets import load_sample_images

        for filename in load_sample_images().filenames:
            if Path(filename).name == name:
                return Path(filename)
        raise FileNotFoundError(f"scikit-learn does not ship a sample image called {name!r}")

    return locate


SOURCES: tuple[SourcePhoto, ...] = (
    SourcePhoto(
        class_name="astronaut",
        package="scikit-image",
        package_path="skimage/data/astronaut.png",
        locate=_skimage_file("astronaut.png"),
        title="Astronaut Eileen Collins (NASA)",
        credit="NASA; downloaded by scikit-image from the NASA Great Images database",
        licence="Public domain (\"No known copyright restrictions, released into the public domain\")",
        licence_source="docstring of `skimage.data.astronaut`",
        original_url="https://flic.kr/p/r9qvLn",
    ),
    SourcePhoto(
        class_name="cat",
        package="scikit-image",
        package_path="skimage/data/chelsea.png",
        locate=_skimage_file("chelsea.png"),
        title="Chelsea the cat",
        credit="Stefan van der Walt (photographer)",
        licence="CC0 (\"No copyright restrictions. CC0 by the photographer\")",
        licence_source="docstring of `skimage.data.chelsea`",
        original_url="(not given by scikit-image)",
    ),
    SourcePhoto(
        class_name="coffee",
        package="scikit-image",
        package_path="skimage/data/coffee.png",
        locate=_skimage_file("coffee.png"),
        title="Coffee cup (courtesy of Pikolo Espresso Bar)",
        credit="Rachel Michetti (photographer)",
        licence="CC0 (\"No copyright restrictions. CC0 by the photographer\")",
        licence_source="docstring of `skimage.data.coffee`",
        original_url="(not given by scikit-image)",
    ),
    SourcePhoto(
        class_name="rocket",
        package="scikit-image",
        package_path="skimage/data/rocket.jpg",
        locate=_skimage_file("rocket.jpg"),
        title="Launch of DSCOVR on Falcon 9",
        credit="SpaceX",
        licence="Public domain (\"captured by SpaceX and released in the public domain\")",
        licence_source="docstring of `skimage.data.rocket`",
        original_url="https://www.flickr.com/photos/spacexphotos/16511594820/",
    ),
    SourcePhoto(
        class_name="hopper",
        package="matplotlib",
        package_path="matplotlib/mpl-data/sample_data/grace_hopper.jpg",
        locate=_matplotlib_sample("grace_hopper.jpg"),
        title="Commodore Grace M. Hopper, USN",
        credit=(
            "not stated by matplotlib; the shipped file's JPEG comment gives its source as "
            "\"File source: http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg\" "
            "(an official U.S. Navy portrait on Wikimedia Commons)"
        ),
        licence=(
            "Public domain as a work of the U.S. federal government (U.S. Navy), per the "
            "Wikimedia Commons page named in the file; matplotlib itself ships no "
            "licence note for this file"
        ),
        licence_source="JPEG comment of the shipped file (source URL); Wikimedia Commons",
        original_url="http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg",
    ),
    SourcePhoto(
        class_name="china",
        package="scikit-learn",
        package_path="sklearn/datasets/images/china.jpg",
        locate=_sklearn_sample_image("china.jpg"),
        title="Pagoda in China (`china.jpg`)",
        credit=(
            "\"Some rights reserved by danielbuechele\" "
            "(https://www.flickr.com/photos/danielbuechele/); "
            "retrieved 21 August 2011 by Robert Layton"
        ),
        licence="CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)",
        licence_source="sklearn/datasets/images/README.txt",
        original_url="https://www.flickr.com/photos/danielbuechele/6061409035/",
    ),
    SourcePhoto(
        class_name="flower",
        package="scikit-learn",
        package_path="sklearn/datasets/images/flower.jpg",
        locate=_sklearn_sample_image("flower.jpg"),
        title="Dahlia flower (`flower.jpg`)",
        credit=(
            "Flickr user vultilion (https://www.flickr.com/photos/vultilion/); "
            "retrieved 21 August 2011 by Robert Layton (scikit-learn's README "
            "also repeats the line \"Some rights reserved by danielbuechele\" for "
            "this image, apparently a copy-paste slip; the linked photo page is "
            "vultilion's)"
        ),
        licence="CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/)",
        licence_source="sklearn/datasets/images/README.txt",
        original_url="https://www.flickr.com/photos/vultilion/6056698931/",
    ),
)


@dataclass(frozen=True)
class SampleSpec:
    """Random parameters for one generated image."""

    box: tuple[int, int, int, int]  # left, upper, right, lower in source pixels
    out_size: tuple[int, int]  # width, height
    flip: bool
    brightness: float
    contrast: float
    saturation: float
    grayscale: bool


def sample_crop_box(
    rng: np.random.Generator, width: int, height: int, landscape: bool
) -> tuple[int, int, int, int]:
    """Sample a crop of 30-100 % of the image area with the requested orientation.

    Works like torchvision's ``RandomResizedCrop`` sampler: draw an area
    fraction and a log-uniform aspect ratio, retry until the crop fits, and
    fall back to the largest centred crop with a valid ratio.
    """
    lo, hi = LANDSCAPE_RATIO if landscape else PORTRAIT_RATIO
    area = width * height
    for _ in range(50):
        target_area = area * rng.uniform(MIN_AREA_FRACTION, MAX_AREA_FRACTION)
        ratio = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        w = int(round(math.sqrt(target_area * ratio)))
        h = int(round(math.sqrt(target_area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    # Fallback: largest crop with the nearest allowed ratio, centred.
    ratio = min(max(width / height, lo), hi)
    w, h = width, int(round(width / ratio))
    if h > height:
        h, w = height, int(round(height * ratio))
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def sample_output_size(rng: np.random.Generator, crop_w: int, crop_h: int) -> tuple[int, int]:
    """Pick an output size whose long side is in [MIN_LONG_SIDE, MAX_LONG_SIDE].

    The crop's aspect ratio is preserved (up to rounding) and crops are not
    enlarged by more than ``MAX_UPSCALE`` unless that is needed to reach
    ``MIN_LONG_SIDE``.  Sizes are arbitrary integers, so odd sizes such as
    333x251 occur naturally.
    """
    crop_long = max(crop_w, crop_h)
    upper = max(MIN_LONG_SIDE, min(MAX_LONG_SIDE, int(crop_long * MAX_UPSCALE)))
    long_side = int(rng.integers(MIN_LONG_SIDE, upper + 1))
    scale = long_side / crop_long
    if crop_w >= crop_h:
        return long_side, max(1, int(round(crop_h * scale)))
    return max(1, int(round(crop_w * scale))), long_side


def sample_spec(
    rng: np.random.Generator,
    width: int,
    height: int,
    landscape: bool,
    force_grayscale: bool,
) -> SampleSpec:
    """Draw all random parameters for one output image."""
    box = sample_crop_box(rng, width, height, landscape)
    out_size = sample_output_size(rng, box[2] - box[0], box[3] - box[1])
    flip = bool(rng.random() < FLIP_PROBABILITY)
    brightness, contrast, saturation = (float(v) for v in rng.uniform(1 - JITTER, 1 + JITTER, 3))
    grayscale = force_grayscale or bool(rng.random() < GRAYSCALE_PROBABILITY)
    return SampleSpec(box, out_size, flip, brightness, contrast, saturation, grayscale)


def render(photo: Image.Image, spec: SampleSpec) -> Image.Image:
    """Apply crop, flip, colour jitter, resize and optional grayscale to ``photo``."""
    img = photo.crop(spec.box)
    if spec.flip:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(spec.brightness)
    img = ImageEnhance.Contrast(img).enhance(spec.contrast)
    img = ImageEnhance.Color(img).enhance(spec.saturation)
    img = img.resize(spec.out_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return img.convert("L") if spec.grayscale else img


def load_photo(path: Path) -> Image.Image:
    """Load a source photo as an RGB image with EXIF orientation applied."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def clean_managed_files(out: Path, classes: list[str]) -> None:
    """Delete the ``*.jpg`` files this script writes, and emptied class folders."""
    for split in ("train", "val"):
        for name in classes:
            class_dir = out / split / name
            if not class_dir.is_dir():
                continue
            for old in class_dir.glob("*.jpg"):
                old.unlink()
            if not any(class_dir.iterdir()):
                class_dir.rmdir()


def package_version(dist: str) -> str:
    """Return the installed version of distribution ``dist`` (or ``unknown``)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def write_licenses(out: Path, sources: tuple[SourcePhoto, ...]) -> Path:
    """Write ``LICENSES.md`` describing every source photo and its licence."""
    lines = [
        "# Sample data: sources and licences",
        "",
        "Every image under `train/` and `val/` is derived from one of the photographs",
        "listed below: it was cropped, resized, sometimes horizontally flipped,",
        "colour-jittered (brightness, contrast, saturation) and in a few cases converted",
        "to grayscale by `tools/make_sample_data.py`, then re-encoded as JPEG. The class",
        "folder name says which photograph an image comes from. The derived images",
        "are distributed under the same terms as their source photograph.",
        "",
        "The photographs were taken from files that the named Python packages ship;",
        "credits and licences are as stated by those packages (the versions given are",
        "the ones installed when this dataset was generated).",
        "",
    ]
    for src in sources:
        lines += [
            f"## `{src.class_name}`",
            "",
            f"- Source file: `{src.package_path}` from the `{src.package}` package "
            f"(version {package_version(src.package)})",
            f"- Subject: {src.title}",
            f"- Author / credit: {src.credit}",
            f"- Licence: {src.licence}",
            f"- Stated in: {src.licence_source}",
            f"- Original: {src.original_url}",
            "",
        ]
    lines += [
        "## Attribution notice for CC BY 2.0 images",
        "",
        "The `china` and `flower` images are adaptations of photographs licensed under",
        "Creative Commons Attribution 2.0 Generic (CC BY 2.0,",
        "https://creativecommons.org/licenses/by/2.0/). The changes made are those",
        "listed at the top of this file. Credit: see the entries above.",
        "",
    ]
    path = out / "LICENSES.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def generate(out: Path, seed: int, train_per_class: int, val_per_class: int) -> list[Path]:
    """Generate the dataset under ``out`` and return the written image paths."""
    classes = [src.class_name for src in SOURCES]
    clean_managed_files(out, classes)
    written: list[Path] = []
    for class_index, src in enumerate(SOURCES):
        path = src.locate()
        if not path.is_file():
            raise FileNotFoundError(f"{src.package} does not provide {src.package_path} ({path})")
        photo = load_photo(path)
        LOGGER.info("class %-9s <- %s (%dx%d)", src.class_name, path, *photo.size)
        rng = np.random.default_rng([seed, class_index])
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            split_dir = out / split / src.class_name
            split_dir.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                # Alternate orientation so each class/split has both; force one
                # grayscale image per split in the first class.
                landscape = i % 2 == 0
                force_gray = class_index == 0 and i == count - 1
                spec = sample_spec(rng, photo.width, photo.height, landscape, force_gray)
                img = render(photo, spec)
                target = split_dir / f"{src.class_name}_{i:02d}.jpg"
                img.save(target, **JPEG_OPTIONS)
                written.append(target)
                LOGGER.debug(
                    "%s: crop=%s size=%s flip=%s gray=%s",
                    target.relative_to(out),
                    spec.box,
                    spec.out_size,
                    spec.flip,
                    spec.grayscale,
                )
    return written


def directory_size(path: Path) -> int:
    """Total size in bytes of all regular files below ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--train-per-class", type=int, default=8, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=3, help="validation images per class")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every image")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point: build the dataset and its licence file."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.train_per_class < 2 or args.val_per_class < 2:
        raise SystemExit("--train-per-class and --val-per-class must be at least 2")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    written = generate(out, args.seed, args.train_per_class, args.val_per_class)
    licences = write_licenses(out, SOURCES)
    total = directory_size(out)
    LOGGER.info("wrote %d images and %s", len(written), licences)
    LOGGER.info("total size of %s: %.2f MiB", out, total / 2**20)
    if total > SIZE_BUDGET_BYTES:
        LOGGER.warning("dataset exceeds the %.0f MiB budget", SIZE_BUDGET_BYTES / 2**20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
