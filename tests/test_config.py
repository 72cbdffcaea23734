"""Strict config loading: every error names the dotted key path and what was expected."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dalinorm import Config, ConfigError, load_config
from dalinorm.config import config_from_dict, config_to_dict

from testkit import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(raw=None, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw or {}, overrides=overrides)
    return str(info.value)


def test_defaults_are_torchvision_imagenet_recipe():
    cfg = config_from_dict({})
    assert cfg.train.size == 224 and cfg.train.scale == (0.08, 1.0)
    assert cfg.train.ratio == pytest.approx((3 / 4, 4 / 3)) and cfg.train.hflip == 0.5
    assert (cfg.eval.resize_shorter, cfg.eval.crop) == (256, 224)
    assert cfg.normalize.source == "imagenet" and cfg.data.exif == "ignore"


@pytest.mark.parametrize("name", ["imagenet_resnet50.yaml", "sample.yaml", "imagenet_fp16_nhwc.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name)
    assert isinstance(cfg, Config)


def test_fp16_nhwc_config_is_shipped():
    cfg = load_config(REPO / "configs" / "imagenet_fp16_nhwc.yaml")
    assert (cfg.output.dtype, cfg.output.layout) == ("float16", "NHWC")


def test_unknown_key_suggests_nearest():
    msg = error_of({"train": {"hflip_prb": 0.5}})
    assert msg == "train.hflip_prb: unknown key (did you mean 'hflip'?)"
    assert "did you mean 'normalize'" in error_of({"normalise": {}})


def test_unknown_key_without_close_match_lists_valid_keys():
    msg = error_of({"loader": {"zzz": 1}})
    assert msg.startswith("loader.zzz: unknown key; valid keys: batch_size")


def test_duplicate_key_names_its_line(tmp_path):
    path = write(tmp_path, """\
        loader:
          batch_size: 4
          batch_size: 8
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "batch_size: duplicate key at line 3 (first defined at line 2)" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"loader": {"batch_size": True}}, "loader.batch_size: must be an integer, got bool True"),
        ({"loader": {"batch_size": 2.0}}, "loader.batch_size: must be an integer, got float 2.0"),
        ({"loader": {"batch_size": "8"}}, "loader.batch_size: must be an integer, got str '8'"),
        ({"loader": {"drop_last": 1}}, "loader.drop_last: must be true or false, got int 1"),
        ({"train": {"hflip": "half"}}, "train.hflip: must be a number, got str 'half'"),
        ({"train": {"scale": 0.5}}, "train.scale: must be a list, got float 0.5"),
        ({"train": {"scale": [0.1, 0.5, 1]}}, "train.scale: must be a list of 2 values, got 3"),
        ({"loader": {"device": "tpu"}}, "loader.device: must be one of auto|gpu|cpu, got 'tpu'"),
        ({"output": {"layout": "CHW"}}, "output.layout: must be one of NCHW|NHWC, got 'CHW'"),
        ({"data": {"root": 3}}, "data.root: must be a path (string), got int 3"),
        ({"loader": []}, "loader: must be a mapping, got list []"),
    ],
)
def test_wrong_types(raw, expected):
    assert error_of(raw) == expected


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        ({"loader": {"batch_size": 0}}, "loader.batch_size", "must be >= 1, got 0"),
        ({"loader": {"num_threads": 0}}, "loader.num_threads", "must be >= 1"),
        ({"train": {"size": 0}}, "train.size", "must be >= 1"),
        ({"eval": {"crop": 0}}, "eval.crop", "must be >= 1"),
        ({"eval": {"resize_shorter": 0, "crop": 1}}, "eval.resize_shorter", "must be >= 1"),
        ({"eval": {"resize_shorter": 200, "crop": 224}}, "eval.crop", "must be <= eval.resize_shorter"),
        ({"train": {"scale": [0.0, 1.0]}}, "train.scale", "0 < min <= max <= 1"),
        ({"train": {"scale": [0.5, 1.5]}}, "train.scale", "0 < min <= max <= 1"),
        ({"train": {"scale": [0.9, 0.5]}}, "train.scale", "0 < min <= max <= 1"),
        ({"train": {"ratio": [0.0, 1.0]}}, "train.ratio", "0 < min <= max"),
        ({"train": {"ratio": [2.0, 1.0]}}, "train.ratio", "0 < min <= max"),
        ({"train": {"hflip": 1.5}}, "train.hflip", "probability in [0, 1]"),
        ({"train": {"hflip": -0.1}}, "train.hflip", "probability in [0, 1]"),
        ({"normalize": {"source": "values", "mean": [0.5], "std": [0.0]}}, "normalize.std", "must be > 0"),
        ({"normalize": {"source": "values", "mean": [0.5, 0.5], "std": [0.2]}}, "normalize.mean",
         "must have 1 or data.channels (3) values, got 2"),
        ({"data": {"channels": 1}, "normalize": {"source": "values", "mean": [0.5, 0.5, 0.5],
                                                 "std": [0.2]}},
         "normalize.mean", "must have 1 or data.channels (1) values, got 3"),
        ({"data": {"channels": 1}, "normalize": {"source": "values", "mean": [0.5],
                                                 "std": [0.2, 0.2, 0.2]}},
         "normalize.std", "must have 1 or data.channels (1) values, got 3"),
        ({"data": {"channels": 1}}, "normalize.source",
         "'imagenet' statistics are for 3 RGB channels, but data.channels is 1"),
        ({"data": {"channels": 4}}, "data.channels", "must be 1 (grayscale) or 3 (RGB)"),
        ({"data": {"channels": 0}}, "data.channels", "must be >= 1, got 0"),
        ({"data": {"dtype": "float32"}}, "data.dtype", "only read from arrays (data.format numpy)"),
        ({"normalize": {"source": "values", "mean": [0.5]}}, "normalize.std", "is required"),
        ({"normalize": {"source": "imagenet", "mean": [0.5]}}, "normalize.mean", "only used with"),
        ({"normalize": {"source": "stats"}}, "normalize.stats_file", "is required"),
        ({"data": {"train": "x", "val": "x"}}, "data.val", "must differ from data.train"),
        ({"data": {"train": "../elsewhere"}}, "data.train", "must be a subfolder of data.root"),
    ],
)
def test_ranges(raw, key, fragment):
    msg = error_of(raw)
    assert msg.startswith(f"{key}: ") and fragment in msg, msg


def test_overrides_are_parsed_as_yaml_and_validated():
    cfg = config_from_dict({}, overrides=["loader.batch_size=64", "train.scale=[0.2, 0.9]",
                                          "output.dtype=float16", "loader.drop_last=false"])
    assert cfg.loader.batch_size == 64 and cfg.train.scale == (0.2, 0.9)
    assert cfg.output.dtype == "float16" and cfg.loader.drop_last is False
    assert error_of(overrides=["loader.batch_size=yes"]).startswith("loader.batch_size: must be an integer")
    assert "did you mean 'batch_size'" in error_of(overrides=["loader.batchsize=3"])
    assert error_of(overrides=["loader.batch_size"]).endswith("override must look like section.key=value")
    assert "is not a section" in error_of({"loader": {"batch_size": 4}}, overrides=["loader.batch_size.x=1"])


def test_relative_paths_resolve_against_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data:\n  root: ../images\nnormalize:\n  source: stats\n  stats_file: s.yaml\n")
    cfg = load_config(path)
    assert cfg.data.root == tmp_path / "images"
    assert cfg.normalize.stats_file == tmp_path / "sub" / "s.yaml"
    # paths are taken literally: no ~ or $VAR expansion
    cfg = load_config(path, overrides=["data.root=$HOME/x"])
    assert cfg.data.root == tmp_path / "sub" / "$HOME" / "x"


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "loader:\n  batch_size: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: invalid YAML at line")


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "loader: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "invalid YAML" in str(info.value)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_round_trip_through_yaml(tmp_path):
    import yaml

    cfg = load_config(REPO / "configs" / "imagenet_resnet50.yaml")
    text = yaml.safe_dump(config_to_dict(cfg))
    again = load_config(write(tmp_path, text))
    assert again == cfg


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dalinorm", *args], capture_output=True, text=True)


def test_cli_validate_prints_resolved_yaml():
    proc = run_cli("validate", "--set", "loader.seed=5", str(REPO / "configs" / "sample.yaml"),
                   "--set", "loader.batch_size=3", "--set", "train.hflip=0.25")  # before or after
    assert proc.returncode == 0, proc.stderr
    import yaml

    tree = yaml.safe_load(proc.stdout)
    assert tree["loader"]["batch_size"] == 3 and tree["loader"]["seed"] == 5
    assert tree["train"]["hflip"] == 0.25
    assert Path(tree["data"]["root"]) == REPO / "sample_data"


def test_cli_validate_error_is_one_line_exit_2():
    proc = run_cli("validate", str(REPO / "configs" / "sample.yaml"), "--set", "train.hflip=2")
    assert proc.returncode == 2
    assert proc.stderr == "error: train.hflip: must be a probability in [0, 1], got 2.0\n"
    assert proc.stdout == ""
    debug = run_cli("--debug", "validate", str(REPO / "configs" / "sample.yaml"), "--set", "train.hflip=2")
    assert "Traceback" in debug.stderr


def test_image_kinds_are_declared_in_data():
    cfg = config_from_dict({})
    assert (cfg.data.channels, cfg.data.dtype) == (3, "uint8")
    gray16 = config_from_dict({"data": {"channels": 1, "dtype": "uint16"},
                               "normalize": {"source": "values", "mean": [0.3], "std": [0.2]}})
    assert (gray16.data.channels, gray16.data.dtype) == (1, "uint16")
    # per_image ignores the (default) imagenet source, so one channel needs no statistics
    assert config_from_dict({"data": {"channels": 1}, "normalize": {"mode": "per_image"}}).data.channels == 1
    assert config_from_dict({"data": {"channels": 1}, "normalize": {"source": "none"}}).data.channels == 1
    assert error_of({"data": {"dtype": "uint12"}}).startswith("data.dtype: must be one of uint8|uint16|float32")
