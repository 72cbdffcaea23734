"""``output.layout: NHWC``: [N, C, H, W]-shaped tensors in channels_last memory, from both loaders.

A model after ``.to(memory_format=torch.channels_last)`` takes [N, C, H, W]-shaped input whose
memory is NHWC; an [N, H, W, C]-shaped tensor fails in its first convolution. The images are
textured and non-square, so a transposed, mirrored or channel-swapped write changes values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dalinorm import DaliLoader
from dalinorm.integration.reference import reference_loader

from testkit import DEVICES, make_config

SIZES = [(97, 61), (61, 97), (130, 75), (75, 130), (50, 81), (160, 90), (83, 47)]  # (w, h)


def _textured(width: int, height: int, seed: int) -> np.ndarray:
    """Gradients, stripes at a per-image angle and noise: distinct everywhere, per channel."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((x * np.cos(angle) + y * np.sin(angle)) / rng.uniform(2, 6))
    channels = [
        255 * x / width * 0.6 + 40 * stripes + 30,
        255 * y / height * 0.6 - 40 * stripes + 60,
        120 + 60 * np.cos(x / 5 + seed) * np.sin(y / 7) + 20 * stripes,
    ]
    img = np.stack(channels, axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def textured_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("textured")
    for split, n in (("train", 12), ("val", 7)):
        for i in range(n):
            folder = root / split / f"class_{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            w, h = SIZES[i % len(SIZES)]
            Image.fromarray(_textured(w, h, seed=100 * (split == "val") + i)).save(
                folder / f"img_{i:02d}.jpg", quality=95)
    return root


def _config(root, device: str, dtype: str, layout: str):
    return make_config(root, f"loader.device={device}", f"output.dtype={dtype}",
                       f"output.layout={layout}", "loader.drop_last=false")


def _conv_model(dtype: torch.dtype, device: torch.device, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    model = model.to(device=device, dtype=dtype).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _check_channels_last_batch(x: torch.Tensor, reference: torch.Tensor, model, plain_model) -> None:
    """``x`` (NHWC config) holds ``reference``'s (NCHW config) values in channels_last memory,
    and a channels_last convolution model runs on it."""
    assert x.shape == reference.shape and x.shape[1:] == (3, 32, 32)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()  # the memory really is NHWC, not NCHW
    assert reference.is_contiguous()
    assert torch.equal(x, reference)  # the same values: only the memory order differs
    with torch.no_grad():
        out = model(x)
        expected = plain_model(reference)
    assert out.shape == (x.shape[0], 8, 30, 30)
    assert out.is_contiguous(memory_format=torch.channels_last)  # ran in channels_last
    # the same convolution on the same values; channels_last kernels may sum in another order:
    # float32 reorderings of 27-term sums of |x| < 3 stay < 1e-5; float16 within a few ulps of |y| < 8
    tol = 1e-5 if x.dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.float(), expected.float(), atol=tol, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("split", ["val", "train"])
def test_dali_nhwc_is_channels_last_view_of_the_same_pixels(textured_root, device, dtype, split):
    """Eval: the same files; train: the same seed, hence the same crops and flips (the CPU float32
    train graph writes HWC in the numba resize operator, float16 in crop_mirror_normalize)."""
    nhwc = DaliLoader(_config(textured_root, device, dtype, "NHWC"), split)
    nchw = DaliLoader(_config(textured_root, device, dtype, "NCHW"), split)
    torch_dtype, torch_device = getattr(torch, dtype), torch.device(nhwc.device)
    model = _conv_model(torch_dtype, torch_device, channels_last=True)
    plain_model = _conv_model(torch_dtype, torch_device, channels_last=False)
    batches = 0
    for (x, y), (ref, ref_y) in zip(nhwc, nchw, strict=True):
        assert x.device == torch_device and x.dtype == torch_dtype
        assert torch.equal(y, ref_y)
        _check_channels_last_batch(x, ref, model, plain_model)
        batches += 1
    assert batches == len(nhwc) == len(nchw) >= 2


@pytest.mark.parametrize("device", DEVICES)
def test_dali_nhwc_batch_is_a_view_of_the_buffer_dali_filled(textured_root, device):
    """No copy at all: the batch's memory is DALI's own output buffer, seen as NCHW."""
    loader = DaliLoader(_config(textured_root, device, "float32", "NHWC"), "val")
    iter(loader)  # builds the feed
    feed = loader._feed
    filled = []
    real_outputs = feed._pipe.outputs

    def recording_outputs():
        outputs = real_outputs()
        filled.extend((o.as_tensor().data_ptr(), tuple(o.as_tensor().shape())) for o in outputs)
        return outputs

    feed._pipe.outputs = recording_outputs
    images, _ = feed.next()
    (pointer, shape), _labels = filled
    assert shape == (5, 32, 32, 3)  # DALI's HWC output, as is
    assert images.shape == (5, 3, 32, 32) and images.data_ptr() == pointer


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_reference_nhwc_is_channels_last_with_the_same_pixels(textured_root, dtype):
    nhwc = reference_loader(_config(textured_root, "cpu", dtype, "NHWC"), "val", num_workers=0)
    nchw = reference_loader(_config(textured_root, "cpu", dtype, "NCHW"), "val", num_workers=0)
    torch_dtype = getattr(torch, dtype)
    model = _conv_model(torch_dtype, torch.device("cpu"), channels_last=True)
    plain_model = _conv_model(torch_dtype, torch.device("cpu"), channels_last=False)
    batches = 0
    for (x, y), (ref, ref_y) in zip(nhwc, nchw, strict=True):
        assert x.dtype == torch_dtype and torch.equal(y, ref_y)
        _check_channels_last_batch(x, ref, model, plain_model)
        batches += 1
    assert batches == 2


def test_both_loaders_agree_in_channels_last(textured_root):
    """DaliLoader and the reference loader from one NHWC config: same shape and memory format,
    values within CPU parity (the default exact resize: float rounding of the normalization)."""
    cfg = _config(textured_root, "cpu", "float32", "NHWC")
    dali = torch.cat([x for x, _ in DaliLoader(cfg, "val")])
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)])
    assert dali.shape == ref.shape == (7, 3, 32, 32)
    # torch.cat keeps the inputs' channels_last format
    assert dali.is_contiguous(memory_format=torch.channels_last)
    assert ref.is_contiguous(memory_format=torch.channels_last)
    # bit-identical pixels on the CPU (docs/PARITY.md); normalization rounding < 1e-5 units
    torch.testing.assert_close(dali, ref, atol=1e-5, rtol=0)
