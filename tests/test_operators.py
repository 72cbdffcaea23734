"""The numba operators compile once per kind, not once per output size or normalization: what
changes between configs travels as inputs, and the outputs follow those inputs exactly."""

from __future__ import annotations

import numpy as np
import torch
from testkit import make_config, write_textured_folder

from dalinorm.integration.loader import DaliLoader
from dalinorm.integration.reference import reference_loader
from dalinorm.pipelines.resample import compiled_operator_kinds


def _first_batch(cfg, split):
    loader = DaliLoader(cfg, split)
    images, labels = next(iter(loader))
    loader.close()
    return images, labels


def test_one_compiled_operator_per_kind_serves_every_size_and_normalization(tmp_path):
    write_textured_folder(tmp_path, split="train", n=10, classes=2, seed=1)
    write_textured_folder(tmp_path, split="val", n=6, classes=2, seed=2)
    small = make_config(tmp_path, "normalize.source=imagenet")
    _first_batch(small, "train")
    _first_batch(small, "val")
    kinds = compiled_operator_kinds()

    # another output size, crop and normalization: no new compilation ...
    other = make_config(tmp_path, "train.size=40", "eval.resize_shorter=52", "eval.crop=44",
                        "normalize.source=values", "normalize.mean=[0.2, 0.5, 0.7]",
                        "normalize.std=[0.11, 0.3, 0.9]")
    train_other, _ = _first_batch(other, "train")
    val_other, _ = _first_batch(other, "val")
    assert compiled_operator_kinds() == kinds
    # ... and the outputs follow the new size and values: shapes, and eval equal to
    # torchvision's recipe (the CPU resize is bit-exact; 1e-5 is float32 normalization
    # rounding, as in the parity suite)
    assert tuple(train_other.shape[1:]) == (3, 40, 40)
    reference, _ = next(iter(reference_loader(other, "val")))
    assert val_other.shape == reference.shape == (5, 3, 44, 44)
    torch.testing.assert_close(val_other, reference, atol=1e-5, rtol=0)


def test_the_fused_train_operator_applies_the_configured_mean_and_std(tmp_path):
    # Same seed, so the same crops and flips: two normalizations of one uint8 result must be
    # related by (x_a / inv_std_a + mean_a) == (x_b / inv_std_b + mean_b), per channel. A mean
    # or std compiled into the operator and reused for the second config breaks it.
    write_textured_folder(tmp_path, split="train", n=10, classes=2, seed=3)
    a = make_config(tmp_path, "normalize.source=imagenet")
    b = make_config(tmp_path, "normalize.source=values", "normalize.mean=[0.1, 0.9, 0.4]",
                    "normalize.std=[0.5, 0.05, 0.2]")
    xa, la = _first_batch(a, "train")
    xb, lb = _first_batch(b, "train")
    assert torch.equal(la, lb)

    def pixels(x, mean, std):  # back to 0–255 levels
        m = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1) * 255
        s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1) * 255
        return x.to(torch.float64) * s + m

    pa = pixels(xa, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    pb = pixels(xb, (0.1, 0.9, 0.4), (0.5, 0.05, 0.2))
    # both are the same uint8 image up to float32 rounding of the normalization (≤ 1e-3 level)
    assert (pa - pb).abs().max().item() < 1e-3
    assert np.allclose(pa.numpy(), np.round(pa.numpy()), atol=1e-3)
