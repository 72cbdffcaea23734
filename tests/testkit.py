"""Test helpers: small ImageFolder datasets written with PIL, configs, the device parameter."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


needs_cuda = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
# The same test bodies run on the CPU path and, where there is one, on the GPU path.
DEVICES = ["cpu", pytest.param("gpu", marks=[needs_cuda, pytest.mark.cuda])]


@dataclass(frozen=True)
class ColourFolder:
    """An ImageFolder split whose images are flat colours, one distinct colour per image.

    ``colours[i]`` is the colour of ``files[i]`` as PIL decodes it (the reference), in
    torchvision ``ImageFolder`` order, so a pipeline's output can be matched image by image.
    """

    root: Path  # data.root
    split: str
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    colours: np.ndarray  # [N, 3] float64, decoded pixel values
    sizes: tuple[tuple[int, int], ...]  # (width, height)

    def identify(self, images: np.ndarray, mean, std, layout: str = "NCHW") -> list[int]:
        """Index of each output image, by its mean colour (de-normalized), nearest reference."""
        x = images.astype(np.float64)
        if layout == "NCHW":
            x = x.transpose(0, 2, 3, 1)
        colour = x.mean(axis=(1, 2)) * (np.asarray(std) * 255.0) + np.asarray(mean) * 255.0
        dist = np.abs(colour[:, None, :] - self.colours[None, :, :]).max(axis=2)
        idx = dist.argmin(axis=1)
        assert (dist[np.arange(len(idx)), idx] < 4.0).all(), "an output colour matches no image"
        return idx.tolist()


def _palette(n: int) -> list[tuple[int, int, int]]:
    levels = [24, 72, 120, 168, 216]
    triples = [t for t in itertools.product(levels, repeat=3) if len(set(t)) > 1]
    return triples[:n]


def write_colour_folder(
    root: Path,
    *,
    split: str = "train",
    n: int = 37,
    classes: int = 3,
    grayscale_every: int = 9,
) -> ColourFolder:
    """Write ``n`` flat-colour JPEGs in ``classes`` class folders, sizes 17×9 … 900×600."""
    sizes_cycle = [(17, 9), (9, 17), (64, 48), (48, 64), (333, 251), (251, 333), (900, 600),
                   (600, 900), (128, 128), (257, 129), (31, 77)]
    palette = _palette(n)
    grays = iter([40, 100, 160, 230, 10, 250, 70, 190])
    root.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, int, tuple[int, int]]] = []
    for i in range(n):
        label = i % classes
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        size = sizes_cycle[i % len(sizes_cycle)]
        path = folder / f"img_{i:03d}.jpg"
        if grayscale_every and i % grayscale_every == grayscale_every - 1:
            img = Image.new("L", size, next(grays))
        else:
            img = Image.new("RGB", size, palette[i])
        img.save(path, quality=95)
        written.append((path, label, size))
    written.sort(key=lambda t: (t[1], t[0].name))  # ImageFolder order: class, then file name
    colours = np.stack(
        [np.asarray(Image.open(p).convert("RGB"), dtype=np.float64).mean(axis=(0, 1)) for p, _, _ in written]
    )
    assert len({tuple(c.round()) for c in colours}) == n, "colours must stay distinct after JPEG"
    return ColourFolder(
        root=root,
        split=split,
        files=tuple(p for p, _, _ in written),
        labels=tuple(lbl for _, lbl, _ in written),
        colours=colours,
        sizes=tuple(s for _, _, s in written),
    )


def make_config(root: Path, *overrides: str, **sections):
    """A Config for ``root`` with small sizes, plus ``--set``-style overrides."""
    from dalinorm.config import config_from_dict

    raw = {
        "data": {"root": str(root)},
        "loader": {"batch_size": 5, "num_threads": 2, "device": "cpu", "seed": 7},
        "train": {"size": 32, "scale": [0.25, 1.0]},
        "eval": {"resize_shorter": 40, "crop": 32},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw, overrides=overrides)


def natural_image(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 HxWx3 that looks like a photo to a resampler: two low-frequency waves per channel,
    three hard-edged discs, grain. Every crop, flip, transpose or shift changes its pixels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.empty((height, width, 3))
    scale = 2 * np.pi / max(width, height)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 6, 2) * scale
        img[..., c] = (128 + 70 * np.sin(fx * x + fy * y + rng.uniform(0, 6.3))
                       + 40 * np.cos(1.7 * fy * x - fx * y + c))
    for _ in range(3):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * min(width, height) + 1
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, (height, width, 1)) + rng.normal(0, 3, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class TexturedFolder:
    """An ImageFolder split of natural-like images (:func:`natural_image`), each drawn from its
    own random state, so no two images and no two crops or flips of one image are alike."""

    root: Path  # data.root
    split: str
    files: tuple[Path, ...]  # in torchvision ImageFolder order
    labels: tuple[int, ...]
    sizes: tuple[tuple[int, int], ...]  # (width, height)


def write_textured_folder(
    root: Path,
    *,
    split: str = "train",
    n: int = 37,
    classes: int = 3,
    seed: int = 0,
    sizes: tuple[tuple[int, int], ...] = ((97, 61), (61, 97), (128, 80), (80, 128), (333, 251),
                                          (45, 150), (150, 45), (257, 129)),
) -> TexturedFolder:
    """Write ``n`` textured JPEGs in ``classes`` class folders, non-square sizes from ``sizes``.
    With ``classes == n`` every image is its own class, so its label names it."""
    rng = np.random.default_rng(seed)
    written = []
    for i in range(n):
        label = i % classes
        folder = root / split / f"class_{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = sizes[i % len(sizes)]
        path = folder / f"img_{i:03d}.jpg"
        Image.fromarray(natural_image(*size, rng)).save(path, quality=90)
        written.append((path, label, size))
    written.sort(key=lambda t: (t[1], t[0].name))  # ImageFolder order: class, then file name
    return TexturedFolder(root=root, split=split, files=tuple(p for p, _, _ in written),
                          labels=tuple(lbl for _, lbl, _ in written),
                          sizes=tuple(s for _, _, s in written))


def tensor_digest(images) -> str:
    """sha256 of a tensor's exact values in logical (N, ...) order, whatever its memory format:
    any change of crop, flip, order or a single value changes it."""
    import hashlib

    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
