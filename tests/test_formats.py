"""data.format: file_list gives the same tensors and statistics as the ImageFolder it lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dalinorm import DaliLoader, DatasetError
from dalinorm.integration.reference import reference_loader
from dalinorm.stats import compute_stats

from testkit import make_config


def write_lists(root, data) -> None:
    """train.txt / val.txt in DALI's file-list format, paths relative to root."""
    for split in ("train", "val"):
        files = sorted((root / split).glob("*/*.jpg"))
        classes = sorted({f.parent.name for f in files})
        lines = [f"{f.relative_to(root).as_posix()} {classes.index(f.parent.name)}" for f in files]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_file_list_matches_imagefolder(colour_data):
    train, val = colour_data
    write_lists(train.root, train)
    folder = make_config(train.root)
    listed = make_config(train.root, "data.format=file_list", "data.train=train.txt", "data.val=val.txt")
    for split in ("train", "val"):
        a = [(x.clone(), y.clone()) for x, y in DaliLoader(folder, split)]
        b = [(x.clone(), y.clone()) for x, y in DaliLoader(listed, split)]
        assert len(a) == len(b)
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert compute_stats(folder).sums == compute_stats(listed).sums
    ref = torch.cat([x for x, _ in reference_loader(listed, "val", num_workers=0)])
    dali = torch.cat([x for x, _ in DaliLoader(listed, "val")])
    np.testing.assert_allclose(dali.numpy(), ref.numpy(), atol=1e-5)  # flat colours: no resampling error


@pytest.mark.parametrize("text, message", [
    ("a.jpg\n", "train.txt:1: expected 'relative/path label'"),
    ("a.jpg x\n", "train.txt:1: expected 'relative/path label'"),
    ("/abs/a.jpg 0\n", "train.txt:1: path must be relative to data.root"),
    ("\n\n", "lists no files"),
])
def test_bad_file_lists_are_named(tmp_path, text, message):
    (tmp_path / "train.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        DaliLoader(make_config(tmp_path, "data.format=file_list", "data.train=train.txt"), "train")
