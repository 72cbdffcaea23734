"""``normalize.mode: per_image``: each yielded image standardized by its own mean and std.

Checked against float64 numpy on the yielded tensors (mean 0, std 1 per image over all its
pixels and channels), against the torchvision reference path built from the same config, and
against the std floor (flat and nearly flat images, PNG so the decoded pixels are known exactly).
The images are textured and non-square, with channels of different means, so standardizing per
channel instead of over the whole image is visible.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dalinorm import DaliLoader
from dalinorm.config import ConfigError
from dalinorm.integration.reference import reference_loader
from dalinorm.pipelines.normalize import per_image_std_floor

from testkit import DEVICES, make_config, write_textured_folder

PER_IMAGE = ("normalize.mode=per_image", "normalize.source=none", "loader.drop_last=false")

# Bound on |mean| and |std - 1| of each image, computed in float64 from the float32 output.
# DALI reduces in float32 over 3,072 (32x32x3) to 150,528 (224x224x3) values; measured, its
# mean and std of 0-255 values are off by < 1e-7 relative (its reductions accumulate in
# tree order, not sequentially), which moves the output's mean by |dm|/s < 1e-6 for these
# images (mean/std < 5), and each output value carries one float32 rounding (6e-8 relative).
# 1e-5 leaves a factor 10 over the worst measured (2e-7 for mean, 1e-7 for std).
MOMENT_TOL = 1e-5


@pytest.fixture(scope="module")
def textured_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("per_image")
    write_textured_folder(root, split="train", n=10, classes=2, seed=3)
    write_textured_folder(root, split="val", n=10, classes=2, seed=4)
    return root


def _images(cfg, split: str) -> torch.Tensor:
    return torch.cat([x for x, _ in DaliLoader(cfg, split)])


def _moments(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: mean and std over C, H, W; and the per-channel means, all in float64."""
    x = images.detach().cpu().double().numpy()  # [N, C, H, W] in logical order
    return x.mean(axis=(1, 2, 3)), x.std(axis=(1, 2, 3)), x.mean(axis=(2, 3))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_every_image_has_mean_0_and_std_1(textured_root, device, layout, split):
    cfg = make_config(textured_root, *PER_IMAGE, f"loader.device={device}",
                      f"output.layout={layout}")
    images = _images(cfg, split)
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.float32
    if layout == "NHWC":
        assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    mean, std, channel_means = _moments(images)
    assert np.abs(mean).max() <= MOMENT_TOL, mean
    assert np.abs(std - 1).max() <= MOMENT_TOL, std
    # over all channels together, not per channel: the channels keep their different means
    # (per-channel standardization would also give mean 0 and std 1 over the whole image)
    assert np.abs(channel_means).max() > 0.2, channel_means


@pytest.mark.parametrize("device", DEVICES)
def test_mean_0_and_std_1_at_224(textured_root, device):
    """150,528 values per image: the largest reduction of a standard recipe."""
    cfg = make_config(textured_root, *PER_IMAGE, f"loader.device={device}", "train.size=224",
                      "eval.resize_shorter=256", "eval.crop=224")
    for split in ("train", "val"):
        mean, std, _ = _moments(_images(cfg, split))
        assert np.abs(mean).max() <= MOMENT_TOL and np.abs(std - 1).max() <= MOMENT_TOL, (mean, std)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_eval_equals_the_reference_path(textured_root, dtype, layout):
    """CPU: DALI's resized uint8 pixels equal PIL's bit for bit (the exact resize), so only
    the float32 standardization differs: both subtract a mean and divide by a std that agree
    to < 1e-7 relative, on |values| < 4, so the outputs agree to a few float32 ulps of 4
    (measured 4.8e-7); 2e-6 allows 4 ulps. float16: both round the same float32 value, so
    a result differs only where that value lies within 2e-6 of a float16 rounding boundary:
    one float16 ulp at |x| < 4 (2**-9 below 2, 2**-8 up to 4): atol 2**-8."""
    cfg = make_config(textured_root, *PER_IMAGE, "loader.device=cpu", f"output.dtype={dtype}",
                      f"output.layout={layout}")
    dali = _images(cfg, "val")
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)])
    assert dali.shape == ref.shape == (10, 3, 32, 32) and dali.dtype == ref.dtype
    assert ref.abs().max() < 4
    atol = 2e-6 if dtype == "float32" else 2.0 ** -8
    torch.testing.assert_close(dali.float(), ref.float(), atol=atol, rtol=0)


def _write_png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def flat_root(tmp_path_factory):
    """40x40 PNGs (exact pixels; eval's Resize(40) keeps them, CenterCrop(32) crops):
    a flat gray image, a flat coloured one, and a gray checkerboard of levels 100 and 101."""
    root = tmp_path_factory.mktemp("flat")
    checker = (100 + (np.indices((40, 40)).sum(axis=0) % 2)).astype(np.uint8)
    images = {
        "a_gray": np.full((40, 40, 3), 137, np.uint8),
        "b_colour": np.broadcast_to(np.array([200, 30, 90], np.uint8), (40, 40, 3)).copy(),
        "c_checker": np.repeat(checker[..., None], 3, axis=2),
    }
    for split in ("train", "val"):
        for name, array in images.items():  # one class each: labels 0, 1, 2 name them
            _write_png(root / split / name / f"{name}.png", array)
    return root, images


def _by_label(cfg, split: str) -> torch.Tensor:
    """The images in label order, whatever order the loader yields them in (train shuffles)."""
    batches = list(DaliLoader(cfg, split))
    images = torch.cat([x for x, _ in batches]).cpu()
    labels = torch.cat([y for _, y in batches]).cpu()
    return images[torch.argsort(labels)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", ["train", "val"])
def test_flat_image_gives_zeros_not_nan(flat_root, device, split):
    """std 0: divided by the floor instead, (x - mean) is exactly 0 (a constant's float32 mean
    over 3,072 integer values is exact), so all zeros; without the floor 0 * inf is NaN."""
    root, _ = flat_root
    cfg = make_config(root, *PER_IMAGE, f"loader.device={device}", "train.hflip=0.5")
    images = _by_label(cfg, split)
    assert images.shape == (3, 3, 32, 32) and torch.isfinite(images).all()
    assert torch.equal(images[0], torch.zeros_like(images[0]))  # a_gray: flat in every channel
    # a flat colour is not flat over all channels: standardized like any other image
    mean, std, _ = _moments(images[1:2])
    assert abs(mean[0]) <= MOMENT_TOL and abs(std[0] - 1) <= MOMENT_TOL


def test_floor_is_one_over_sqrt_values_on_the_unit_scale(flat_root):
    """The checkerboard's std, 0.5 level = 0.00196 on the [0, 1] scale, lies under the floor
    1/sqrt(3072) = 0.0180 (4.6 levels): the image is divided by the floor, so its output std
    is 0.00196 / 0.0180 = 0.109, not 1. A floor in 0-255 units (1/sqrt(3072) = 0.018 level)
    would not bind and would give std 1. float64 numpy on the crop PIL decodes is the
    reference; the float32 arithmetic is good to 1e-6 here (values of magnitude 0.11)."""
    root, arrays = flat_root
    cfg = make_config(root, *PER_IMAGE, "loader.device=cpu")
    out = _by_label(cfg, "val")[2].double().numpy()
    crop = arrays["c_checker"][4:36, 4:36].astype(np.float64) / 255.0  # CenterCrop(32) of 40
    floor = per_image_std_floor(32 * 32 * 3)
    assert math.isclose(floor, 1 / math.sqrt(3072))
    assert crop.std() < floor
    expected = (crop - crop.mean()) / floor
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), atol=1e-6, rtol=0)
    assert abs(out.std() - crop.std() / floor) < 1e-6


@pytest.mark.parametrize("source", ["stats", "values"])
def test_per_image_with_dataset_statistics_is_a_config_error(tmp_path, source):
    extra = {"stats": ["normalize.stats_file=s.yaml"],
             "values": ["normalize.mean=[0.5]", "normalize.std=[0.2]"]}[source]
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, "normalize.mode=per_image", f"normalize.source={source}", *extra)
    message = str(err.value)
    assert message.startswith("normalize.source: ") and "\n" not in message
    assert "per_image" in message and "'none'" in message and repr(source) in message


def test_per_image_with_source_none_or_the_default(tmp_path):
    assert make_config(tmp_path, "normalize.mode=per_image").normalize.mode == "per_image"
    assert make_config(tmp_path, *PER_IMAGE).normalize.source == "none"


@pytest.mark.slow  # a training-free but full demo run (stats pass, two epochs)
def test_demo_runs_with_per_image(capsys):
    # the demo swaps in its own stats file, which per_image refuses (it needs none)
    from dalinorm import cli

    assert cli.main(["demo", "--set", "normalize.mode=per_image", "--set", "loader.device=cpu"]) == 0
    assert "normalization: per image" in capsys.readouterr().out
