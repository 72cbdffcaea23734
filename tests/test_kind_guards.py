"""Keys that a data kind cannot honour are refused, never silently dropped; one background
level holds for every channel; a pack's members are held to data.dtype as files are."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dalinorm.config import ConfigError, config_from_dict
from dalinorm.errors import DalinormError

from testkit import DEVICES, make_config, natural_image

ARRAYS = {"data": {"format": "numpy", "channels": 8, "dtype": "uint16"},
          "normalize": {"source": "values", "mean": [0.5], "std": [0.25]}}


def _with(base: dict, **sections) -> dict:
    out = {name: dict(values) for name, values in base.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out


@pytest.mark.parametrize("sections, key", [
    ({"stats": {"background": 0}}, "stats.background"),
    ({"stats": {"background": 0}, "normalize": {"keep_background": True}}, "stats.background"),
    ({"train": {"auto_augment": "trivial_augment_wide"}}, "train.auto_augment"),
    ({"train": {"color_jitter": {"brightness": 0.4}}}, "train.color_jitter"),
    ({"train": {"random_erase": 0.25}}, "train.random_erase"),
    ({"train": {"interpolation": "bicubic"}}, "train.interpolation"),
    ({"eval": {"interpolation": "bicubic"}}, "eval.interpolation"),
    ({"train": {"size_schedule": {"min_res": 160, "max_res": 192, "end_ramp": 5}}},
     "train.size_schedule"),
])
def test_array_graphs_refuse_what_they_do_not_apply(sections, key):
    """The array graphs crop, flip, resize bilinearly and normalize: any other key would be
    accepted and ignored, so it is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=rf"^{key}: is not available with data.format 'numpy'"):
        config_from_dict(_with(ARRAYS, **sections))


def test_a_one_element_background_holds_for_every_channel():
    """``stats.background: [0]`` means what ``0`` means: one level for each channel (the
    histogram of every channel drops the masked pixels, not channel 0's alone)."""
    for value in (0, [0]):
        cfg = config_from_dict({"normalize": {"source": "none"}, "stats": {"background": value}})
        assert cfg.stats.background_levels(3) == (0, 0, 0)
    cfg = config_from_dict({"normalize": {"source": "none"}, "stats": {"background": [1, 2, 3]}})
    assert cfg.stats.background_levels(3) == (1, 2, 3)


@pytest.mark.parametrize("channels, value, ok", [(1, [0.0, 0.0, 0.0], False), (1, [0.5], True),
                                                  (3, [0.1, 0.2], False), (3, [0.1, 0.2, 0.3], True)])
def test_random_erase_value_fits_the_channel_count(channels, value, ok):
    raw = {"data": {"channels": channels}, "normalize": {"source": "none"},
           "train": {"random_erase": {"probability": 0.5, "value": value}}}
    if ok:
        assert config_from_dict(raw).train.random_erase.value == tuple(value)
    else:
        # the section's own check (1 or 3 values) or the cross-section one (1 or channels)
        with pytest.raises(ConfigError, match=rf"^train.random_erase.value: must have 1 or "
                                              rf"(data.channels \({channels}\)|3) values"):
            config_from_dict(raw)


def test_a_pack_member_of_the_other_bit_depth_is_a_named_error(tmp_path):
    """A pack of 8-bit PNGs read with data.dtype uint16: DALI would multiply every sample by
    257; the loader names the member in its tar instead, as it names a file."""
    from dalinorm import DaliLoader
    from dalinorm.commands.pack import pack_split

    rng = np.random.default_rng(3)
    for split in ("train", "val"):
        for i in range(4):
            folder = tmp_path / "src" / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(natural_image(40, 30, rng)).convert("L").save(folder / f"{i}.png")
    gray = {"data": {"channels": 1}, "normalize": {"source": "values", "mean": [0.5], "std": [0.25]}}
    src = make_config(tmp_path / "src", **gray)
    packed = tmp_path / "packed"
    for split in ("train", "val"):
        pack_split(src, split=split, out=packed / split)
    eight = make_config(packed, "data.format=webdataset", **gray)
    next(iter(DaliLoader(eight, "val")))  # the declared depth reads
    sixteen = make_config(packed, "data.format=webdataset", "data.dtype=uint16", **gray)
    with pytest.raises(DalinormError, match=r"shard-\d+\.tar\[\d+\] \(c[01]/\d\.png\): 8-bit "
                                            r"grayscale PNG.*but data.dtype is uint16"):
        DaliLoader(sixteen, "val")


@pytest.mark.parametrize("device", DEVICES)
def test_random_erase_on_grayscale_fills_the_one_channel(tmp_path, device):
    """DALI's erase wants one fill value per channel: a 1-channel train batch with erasing
    always on has its box at the value (and the rest normalized as usual)."""
    from dalinorm import DaliLoader

    rng = np.random.default_rng(5)
    for split in ("train", "val"):
        for i in range(4):
            folder = tmp_path / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(natural_image(48, 40, rng)).convert("L").save(folder / f"{i}.png")
    cfg = make_config(tmp_path, f"loader.device={device}", "loader.batch_size=4",
                      data={"channels": 1},
                      normalize={"source": "values", "mean": [0.5], "std": [0.25]},
                      train={"random_erase": {"probability": 1.0, "value": [7.0]}})
    images, _ = next(iter(DaliLoader(cfg, "train")))
    assert images.shape == (4, 1, 32, 32)
    # 7.0 is outside the normalized range of any pixel ((x/255 - 0.5) / 0.25 <= 2): the box
    # is exactly the pixels equal to it, one non-empty rectangle per image
    for image in images.cpu().numpy()[:, 0]:
        rows, cols = np.nonzero(image == 7.0)
        assert rows.size > 0
        box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (box == 7.0).all() and rows.size == box.size


@pytest.mark.parametrize("stock", [False, True], ids=["numba", "stock"])
def test_both_erase_paths_fill_a_one_channel_image(stock):
    """The stock path (the GPU's, run here on the CPU) and the CPU's numba operator on
    1-channel HWC images: one fill value, the box at that value (the stock path once handed
    DALI three values and failed on one channel)."""
    from nvidia.dali import fn
    from nvidia.dali.pipeline import Pipeline

    from dalinorm.pipelines.augment import erase_images

    cfg = config_from_dict({"data": {"channels": 1}, "normalize": {"source": "none"},
                            "output": {"layout": "NHWC"},
                            "train": {"random_erase": {"probability": 1.0, "value": [7.0]}}})
    rng = np.random.default_rng(0)
    data = [rng.uniform(size=(24, 20, 1)).astype(np.float32) for _ in range(8)]
    pipe = Pipeline(batch_size=len(data), num_threads=2, device_id=None, seed=3)
    with pipe:
        x = fn.external_source(source=lambda: data, batch=True, layout="HWC")
        pipe.set_outputs(erase_images(x, cfg, stock=stock))
    pipe.build()
    (out,) = pipe.run()
    for i in range(len(data)):
        image = np.array(out[i])[:, :, 0]
        assert image.shape == (24, 20)
        rows, cols = np.nonzero(image == 7.0)
        if rows.size:  # a box fits on most draws; where it does, it is one full rectangle
            assert rows.size == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert np.array_equal(image[image != 7.0], data[i][:, :, 0][image != 7.0])
