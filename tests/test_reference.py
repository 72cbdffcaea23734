"""The torchvision reference loader: same contract as DaliLoader, same numbers on flat images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dalinorm import DaliLoader
from dalinorm.integration.reference import reference_loader

from testkit import make_config


@pytest.mark.parametrize("dtype, layout", [("float32", "NCHW"), ("float16", "NHWC")])
def test_same_contract_as_dali(colour_data, dtype, layout):
    _, val = colour_data
    cfg = make_config(val.root, f"output.dtype={dtype}", f"output.layout={layout}")
    ref = reference_loader(cfg, "val", num_workers=0)
    dali = DaliLoader(cfg, "val")
    (xr, yr), (xd, yd) = next(iter(ref)), next(iter(dali))
    assert xr.shape == xd.shape and xr.dtype == xd.dtype
    assert yr.dtype == yd.dtype == torch.int64 and torch.equal(yr, yd)
    assert len(ref) == len(dali)


@pytest.mark.parametrize("mode", ["channel", "global"])
def test_eval_outputs_match_on_flat_colours(colour_data, mode):
    """Flat images survive any resize and crop unchanged, so the two paths must agree to
    float32 rounding: this checks order, labels and normalization, not resampling."""
    _, val = colour_data
    cfg = make_config(val.root, f"normalize.mode={mode}")
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)])
    dali = torch.cat([x for x, _ in DaliLoader(cfg, "val")])
    assert ref.shape == dali.shape
    np.testing.assert_allclose(dali.numpy(), ref.numpy(), rtol=0, atol=1e-5)
