"""DaliLoader over real DALI pipelines and real JPEGs: coverage, order, shapes, normalization."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from dalinorm import DaliLoader
from dalinorm.config import IMAGENET_MEAN, IMAGENET_STD
from dalinorm.pipelines.normalize import pooled_mean_std

from testkit import DEVICES, REPO, make_config, write_textured_folder


def epoch(loader):
    """One epoch as (list of numpy image batches, list of label arrays)."""
    images, labels = [], []
    for x, y in loader:
        images.append(x.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    return images, labels


def identify_epoch(data, loader):
    images, labels = epoch(loader)
    norm = loader.normalization
    ids = [i for batch in images for i in data.identify(batch, norm.mean, norm.std)]  # NCHW-shaped
    return ids, np.concatenate(labels).tolist(), images


@pytest.mark.parametrize("device", DEVICES)
def test_eval_covers_every_file_once_in_imagefolder_order(colour_data, device):
    _, val = colour_data
    cfg = make_config(val.root, f"loader.device={device}")
    loader = DaliLoader(cfg, "val")
    assert len(loader) == math.ceil(23 / 5) and loader.epoch_size == 23
    for _ in range(2):  # and again in the second epoch
        ids, labels, images = identify_epoch(val, loader)
        assert ids == list(range(23))  # torchvision ImageFolder order, every file once
        assert labels == list(val.labels)
        assert [b.shape[0] for b in images] == [5, 5, 5, 5, 3]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, layout", [("float32", "NCHW"), ("float16", "NHWC"), ("float16", "NCHW")])
def test_shapes_dtype_layout_device(colour_data, device, dtype, layout):
    train, _ = colour_data
    cfg = make_config(train.root, f"loader.device={device}", f"output.dtype={dtype}",
                      f"output.layout={layout}")
    expected_device = "cuda" if device == "gpu" else "cpu"
    for split, side in (("train", 32), ("val", 32)):
        loader = DaliLoader(cfg, split)
        x, y = next(iter(loader))
        assert tuple(x.shape) == (5, 3, side, side)  # NHWC is a memory format, not a shape
        assert x.is_contiguous(memory_format=torch.channels_last if layout == "NHWC" else torch.contiguous_format)
        assert x.dtype == getattr(torch, dtype)
        assert x.device.type == expected_device and y.device.type == expected_device
        assert y.dtype == torch.int64 and tuple(y.shape) == (5,)


@pytest.mark.parametrize("device", DEVICES)
def test_train_len_drop_last_and_coverage(colour_data, device):
    train, _ = colour_data
    cfg = make_config(train.root, f"loader.device={device}")
    loader = DaliLoader(cfg, "train")
    assert loader.drop_last and len(loader) == 37 // 5 and loader.epoch_size == 35
    ids, labels, images = identify_epoch(train, loader)
    assert len(images) == len(loader) and all(b.shape[0] == 5 for b in images)
    assert len(set(ids)) == 35  # no duplicates: two images left out of this epoch
    assert labels == [train.labels[i] for i in ids]

    keep = DaliLoader(make_config(train.root, f"loader.device={device}", "loader.drop_last=false"), "train")
    assert len(keep) == 8 and keep.epoch_size == 37
    for _ in range(2):
        ids, labels, images = identify_epoch(train, keep)
        assert sorted(ids) == list(range(37))  # every image exactly once, last batch partial
        assert [b.shape[0] for b in images] == [5] * 7 + [2]


@pytest.mark.slow  # a subprocess or a training run
def test_train_epochs_reshuffle_and_seed_reproduces_in_new_process(colour_data):
    train, _ = colour_data
    cfg = make_config(train.root, "loader.drop_last=false")
    loader = DaliLoader(cfg, "train")
    first, _, _ = identify_epoch(train, loader)
    second, _, _ = identify_epoch(train, loader)
    assert sorted(first) == sorted(second) == list(range(37))
    assert first != second, "every epoch must be a fresh shuffle"
    assert first != list(range(37))

    other_seed, _, _ = identify_epoch(train, DaliLoader(make_config(train.root, "loader.drop_last=false",
                                                                    "loader.seed=8"), "train"))
    assert other_seed != first, "the seed must change the order"

    script = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from testkit import make_config
        from dalinorm import DaliLoader
        from pathlib import Path
        loader = DaliLoader(make_config(Path({str(train.root)!r}), "loader.drop_last=false"), "train")
        out = []
        for _ in range(2):
            out.append([[float(v) for v in x.float().mean(dim=(2, 3)).flatten()] for x, _ in loader])
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import json

    epochs = json.loads(proc.stdout)
    norm = loader.normalization
    ids = []
    for batches in epochs:
        means = np.concatenate([np.asarray(b).reshape(-1, 3, 1, 1) for b in batches])
        ids.append(train.identify(means, norm.mean, norm.std))
    assert ids == [first, second]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["channel", "global"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_constant_image_normalizes_exactly(colour_data, device, mode, split):
    data = colour_data[0] if split == "train" else colour_data[1]
    cfg = make_config(data.root, f"loader.device={device}", f"normalize.mode={mode}")
    loader = DaliLoader(cfg, split)
    if mode == "channel":
        mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    else:
        g_mean, g_std = pooled_mean_std(IMAGENET_MEAN, IMAGENET_STD)
        mean, std = np.full(3, g_mean), np.full(3, g_std)
    ids, _, images = identify_epoch(data, loader)
    x = np.concatenate(images)  # NCHW float32
    expected = (data.colours[ids] / 255.0 - mean) / std  # float64 reference
    # flat JPEG colours decode to the same value everywhere, and resizing a constant keeps it;
    # the only error left is float32 arithmetic: |x| < 3, so 1e-5 is ~40 ulps
    np.testing.assert_allclose(x, np.broadcast_to(expected[:, :, None, None], x.shape), rtol=0, atol=1e-5)


def test_values_and_none_sources(colour_data):
    _, val = colour_data
    cfg = make_config(val.root, "normalize.source=values", "normalize.mean=[0.5]", "normalize.std=[0.25]")
    ids, _, images = identify_epoch(val, DaliLoader(cfg, "val"))
    expected = (val.colours[ids] / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(np.concatenate(images).mean(axis=(2, 3)), expected, rtol=0, atol=1e-5)

    loader = DaliLoader(make_config(val.root, "normalize.source=none"), "val")
    ids, _, images = identify_epoch(val, loader)
    np.testing.assert_allclose(np.concatenate(images).mean(axis=(2, 3)), val.colours[ids] / 255.0,
                               rtol=0, atol=1e-5)


def test_pooled_mean_std_matches_concatenated_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.normal([0.4, 0.5, 0.6], [0.1, 0.2, 0.3], size=(10000, 3))
    g_mean, g_std = pooled_mean_std(pixels.mean(axis=0), pixels.std(axis=0))
    assert g_mean == pytest.approx(pixels.mean(), rel=1e-12)
    assert g_std == pytest.approx(pixels.std(), rel=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_sharded_eval_covers_set_once_without_empty_batches(colour_data, device):
    train, _ = colour_data  # 37 images: not divisible by 3 ranks or by batch 5
    # evaluate the 37-image folder: point data.val at it
    cfg = make_config(train.root, f"loader.device={device}", "data.val=train", "data.train=unused")
    seen = []
    for rank in range(3):
        loader = DaliLoader(cfg, "val", rank=rank, world_size=3)
        for _ in range(2):
            ids, labels, images = identify_epoch(train, loader)
            assert all(b.shape[0] > 0 for b in images)
            assert len(images) == len(loader)
            assert len(ids) == loader.epoch_size
        seen.extend(ids)
    assert seen == list(range(37))  # concatenated by rank: ImageFolder order, every image once


def test_sharded_train_equal_steps_disjoint_and_global_reshuffle(colour_data):
    train, _ = colour_data
    world = 3
    loaders = [DaliLoader(make_config(train.root, "loader.batch_size=4"), "train", rank=r, world_size=world)
               for r in range(world)]
    assert {len(l) for l in loaders} == {(37 // 3) // 4}
    per_epoch = []
    for _ in range(3):
        ranks = [identify_epoch(train, l)[0] for l in loaders]
        flat = [i for r in ranks for i in r]
        assert len(flat) == len(set(flat)), "ranks must read disjoint samples within an epoch"
        assert all(len(r) == len(loaders[0]) * 4 for r in ranks)
        per_epoch.append([set(r) for r in ranks])
    assert per_epoch[0][0] != per_epoch[1][0], "a rank's samples must change between epochs"


def test_sharded_train_without_drop_last_has_equal_steps(colour_data):
    train, _ = colour_data
    loaders = [DaliLoader(make_config(train.root, "loader.drop_last=false", "loader.batch_size=4"),
                          "train", rank=r, world_size=3) for r in range(3)]
    assert {len(l) for l in loaders} == {math.ceil(math.ceil(37 / 3) / 4)}
    ranks = [identify_epoch(train, l)[0] for l in loaders]
    assert {len(r) for r in ranks} == {len(loaders[0]) * 4}
    assert set().union(*map(set, ranks)) == set(range(37))  # nothing left out


def test_cuda_requested_without_gpu_is_a_clear_error(colour_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from dalinorm import ConfigError

    with pytest.raises(ConfigError, match=r"loader.device: 'gpu' was requested but PyTorch sees no CUDA"):
        DaliLoader(make_config(colour_data[0].root, "loader.device=gpu"), "train")


def test_auto_device_picks_cpu_without_cuda(colour_data, caplog):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    import logging

    with caplog.at_level(logging.INFO, logger="dalinorm"):
        loader = DaliLoader(make_config(colour_data[0].root, "loader.device=auto"), "val")
    assert loader.device == "cpu"
    assert "decoding on the CPU" in caplog.text


def test_missing_split_and_empty_class_are_named(tmp_path, colour_data):
    from dalinorm import DatasetError

    with pytest.raises(DatasetError, match=r"data.val: split folder .*/val does not exist"):
        DaliLoader(make_config(tmp_path), "val")
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"class folder\(s\) a in .* hold no image"):
        DaliLoader(make_config(tmp_path), "train")
    with pytest.raises(DatasetError, match="cannot be sharded across 50 ranks"):
        DaliLoader(make_config(colour_data[1].root), "val", rank=0, world_size=50)


def test_batch_larger_than_shard_is_a_clear_error(colour_data):
    from dalinorm import ConfigError

    with pytest.raises(ConfigError, match="loader.batch_size: 64 is larger than the 37 training images"):
        DaliLoader(make_config(colour_data[0].root, "loader.batch_size=64"), "train")


@pytest.fixture(scope="module")
def textured_train(tmp_path_factory):
    """Textured, non-square train images (97×61 … 333×251): a transposed, shifted or unmirrored
    write changes the values, which flat colours would hide."""
    return write_textured_folder(tmp_path_factory.mktemp("textured") / "data", n=17, seed=3)


@pytest.mark.parametrize("device", DEVICES)
def test_train_layouts_and_dtypes_hold_the_same_pixels(textured_train, device):
    """The CPU train graph writes float32 in its resize operator (CHW or HWC) and float16
    through crop_mirror_normalize; with one seed all give the same crops, flips and values.
    The float16 path is the independent reference for the fused operator's write order."""
    train = textured_train
    base = ("loader.drop_last=false", f"loader.device={device}", "train.hflip=0.5")
    nchw = [x.cpu() for x, _ in DaliLoader(make_config(train.root, *base), "train")]
    nhwc = [x.cpu() for x, _ in DaliLoader(make_config(train.root, *base, "output.layout=NHWC"), "train")]
    half = [x.cpu() for x, _ in DaliLoader(make_config(train.root, *base, "output.dtype=float16"), "train")]
    for a, b, h in zip(nchw, nhwc, half, strict=True):
        assert torch.equal(a, b)  # NHWC: the same [N, C, H, W] values, channels_last memory
        # float16 rounding of values |x| < 4: within 2^-9 relative, 4e-3 absolute
        torch.testing.assert_close(h.float(), a, atol=4e-3, rtol=0)
