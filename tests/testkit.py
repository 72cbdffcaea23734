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
