"""torchvision's v2.MixUp and v2.CutMix run on DaliLoader's batches as they come out of it
(float32 and float16, NCHW and channels_last, CPU and GPU), and compute there what they compute
on a plain contiguous tensor and what their definitions say."""

from __future__ import annotations

import re

import pytest
import torch
from torch.testing import assert_close
from torchvision.transforms import v2

from testkit import DEVICES, REPO, make_config, write_textured_folder

CLASSES = 4
SEEDS = (0, 1, 2)
_batches: dict = {}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_augment")
    write_textured_folder(root, split="train", n=12, classes=CLASSES)
    return root


def loader_batch(root, device: str, dtype: str, layout: str):
    """The first train batch of a DaliLoader, untouched (kept with its loader)."""
    from dalinorm import DaliLoader

    key = (device, dtype, layout)
    if key not in _batches:
        cfg = make_config(root, f"loader.device={device}", f"output.dtype={dtype}",
                          f"output.layout={layout}")
        loader = DaliLoader(cfg, "train")
        images, labels = next(iter(loader))
        _batches[key] = (loader, images, labels)
    _, images, labels = _batches[key]
    assert images.shape == (5, 3, 32, 32) and images.dtype == getattr(torch, dtype)
    if layout == "NHWC":  # DaliLoader's NHWC output is a channels_last [N, C, H, W] tensor
        assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    else:
        assert images.is_contiguous()
    return images, labels


def seeded(transform, images, labels, seed: int):
    torch.manual_seed(seed)
    return transform(images, labels)


def soft_target_weights(soft: torch.Tensor, labels: torch.Tensor) -> float:
    """The weight of each sample's own label in its soft target (lam), read from a row whose
    partner (the previous sample, torchvision's roll(1)) has another label."""
    one_hot = torch.nn.functional.one_hot(labels, CLASSES).double()
    partner = one_hot.roll(1, 0)
    rows = [i for i in range(len(labels)) if labels[i] != labels[i - 1]]
    assert rows, "the batch needs two neighbours with different labels"
    lam = float(soft[rows[0], labels[rows[0]]])
    # every row is lam * own one-hot + (1 - lam) * partner's, and sums to 1
    assert_close(soft.double(), lam * one_hot + (1 - lam) * partner, atol=1e-6, rtol=0)
    assert_close(soft.sum(1).double(), torch.ones(len(labels), dtype=torch.float64, device=soft.device),
                 atol=1e-6, rtol=0)  # float32 sums of two terms: a few ulps of 1
    return lam


PARAMS = pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
DTYPES = pytest.mark.parametrize("dtype", ["float32", "float16"])


@pytest.mark.parametrize("device", DEVICES)
@DTYPES
@PARAMS
def test_mixup_on_loader_output(data_root, device, dtype, layout):
    images, labels = loader_batch(data_root, device, dtype, layout)
    mixup = v2.MixUp(alpha=0.2, num_classes=CLASSES)
    lams = []
    for seed in SEEDS:
        mixed, soft = seeded(mixup, images, labels, seed)
        assert mixed.shape == images.shape and mixed.dtype == images.dtype
        assert soft.shape == (5, CLASSES) and soft.dtype == torch.float32 and soft.device == images.device
        # the same draw on a contiguous copy: elementwise ops do not depend on the memory
        # format, so the values are identical (exact comparison)
        plain_mixed, plain_soft = seeded(mixup, images.contiguous(), labels, seed)
        assert_close(mixed, plain_mixed, atol=0, rtol=0)
        assert_close(soft, plain_soft, atol=0, rtol=0)
        # mixup's definition, in float64 from the same inputs: lam * x + (1 - lam) * x[i - 1].
        # torchvision rounds three times in the batch's dtype (two products, one sum), each
        # within half an ulp (eps / 2) of a value at most max|x|: 2 eps * max|x| bounds it
        lam = soft_target_weights(soft, labels)
        x = images.double()
        expected = lam * x + (1 - lam) * x.roll(1, 0)
        bound = 2 * torch.finfo(images.dtype).eps * float(x.abs().max())
        assert_close(mixed.double(), expected, atol=bound, rtol=0)
        lams.append(lam)
    assert any(0.05 < lam < 0.95 for lam in lams), f"no seed mixed visibly: {lams}"


def cut_box(out: torch.Tensor, x: torch.Tensor) -> tuple[int, int, int, int]:
    """(y1, y2, x1, x2) of the pixels CutMix changed, over the whole batch."""
    changed = (out != x).any(dim=1).any(dim=0)  # [H, W]
    rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
    if not len(rows):
        return 0, 0, 0, 0
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


@pytest.mark.parametrize("device", DEVICES)
@DTYPES
@PARAMS
def test_cutmix_on_loader_output(data_root, device, dtype, layout):
    images, labels = loader_batch(data_root, device, dtype, layout)
    cutmix = v2.CutMix(alpha=1.0, num_classes=CLASSES)
    areas = []
    for seed in SEEDS:
        out, soft = seeded(cutmix, images, labels, seed)
        plain_out, plain_soft = seeded(cutmix, images.contiguous(), labels, seed)
        assert_close(out, plain_out, atol=0, rtol=0)  # a copy of values: exact in any layout
        assert_close(soft, plain_soft, atol=0, rtol=0)
        # CutMix's definition: one box (the same for the batch) holds the previous sample's
        # pixels, everything else is the sample's own, copied exactly; the box is on the
        # logical H and W (a channels_last tensor's [N, C, H, W] view, not its memory order)
        y1, y2, x1, x2 = cut_box(out, images)
        rolled = images.roll(1, 0)
        inside = torch.zeros(images.shape[-2:], dtype=torch.bool, device=images.device)
        inside[y1:y2, x1:x2] = True
        assert_close(out[..., inside], rolled[..., inside], atol=0, rtol=0)
        assert_close(out[..., ~inside], images[..., ~inside], atol=0, rtol=0)
        # the label weight is the pixel share: lam = 1 - box area / (H * W), a float64 ratio
        # stored in float32 soft targets (a relative 2**-24 off)
        area = (y2 - y1) * (x2 - x1) / (32 * 32)
        assert soft_target_weights(soft, labels) == pytest.approx(1 - area, abs=1e-6)
        areas.append(area)
    assert any(0 < a < 1 for a in areas), f"no seed cut a box: {areas}"


@pytest.mark.parametrize("device", DEVICES)
@PARAMS
def test_random_choice_of_both_as_in_examples_train(data_root, device, layout):
    images, labels = loader_batch(data_root, device, "float16", layout)
    both = v2.RandomChoice([v2.MixUp(alpha=0.2, num_classes=CLASSES),
                            v2.CutMix(alpha=1.0, num_classes=CLASSES)])
    for seed in SEEDS:
        out, soft = seeded(both, images, labels, seed)
        plain_out, plain_soft = seeded(both, images.contiguous(), labels, seed)
        assert_close(out, plain_out, atol=0, rtol=0)
        assert_close(soft, plain_soft, atol=0, rtol=0)
        soft_target_weights(soft, labels)
        # the soft targets are what cross_entropy takes as class probabilities
        logits = torch.zeros(len(labels), CLASSES, device=images.device)
        assert float(torch.nn.functional.cross_entropy(logits, soft)) == pytest.approx(
            torch.log(torch.tensor(float(CLASSES))).item(), rel=1e-6)


@pytest.mark.slow  # an epoch of the sample data
def test_readme_snippet_runs(monkeypatch):
    """README's "Mixup and CutMix" snippet, verbatim, from the repository root."""
    section = (REPO / "README.md").read_text().split("### Mixup and CutMix", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(REPO)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    assert scope["targets"].shape == (8, 7) and torch.isfinite(scope["loss"])
