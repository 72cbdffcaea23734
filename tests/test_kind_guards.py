"""Keys that a data kind cannot honour are refused, never silently dropped; one background
level holds for every channel; a pack's members are held to data.dtype as files are."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dalinorm.config import ConfigError, config_from_dict
from dalinorm.errors import DalinormError

from testkit import make_config, natural_image

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
