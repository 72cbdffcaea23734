"""The recipe configs (configs/recipe_*.yaml) and the augmentations through the real loaders:
DaliLoader's train graph and the torchvision reference DataLoader built from the same config."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from testkit import REPO

from dalinorm import cli
from dalinorm.config import load_config

RECIPES = ["recipe_torchvision_rn50", "recipe_ffcv_rn50", "recipe_timm_rsb"]
SAMPLE = [f"data.root={REPO / 'sample_data'}", "loader.batch_size=8", "loader.num_threads=2",
          "loader.device=cpu", "loader.repeated_augment=1"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_configs_name_their_source_and_validate_with_explanations(name, capsys):
    path = REPO / "configs" / f"{name}.yaml"
    head = path.read_text().splitlines()[0]
    assert head.startswith("# ") and any(w in head for w in ("torchvision", "FFCV", "timm"))
    assert cli.main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    yaml.safe_load(out)  # the explanations are comments: the output stays YAML
    for key in ("train.auto_augment", "train.color_jitter", "train.random_erase"):
        assert f"# {key}: " in out


def test_torchvision_recipe_is_its_train_py_arguments():
    cfg = load_config(REPO / "configs" / "recipe_torchvision_rn50.yaml")
    assert cfg.train.auto_augment.policy == "trivial_augment_wide"  # --auto-augment ta_wide
    assert cfg.train.random_erase.probability == 0.1  # --random-erase 0.1
    assert (cfg.train.size, cfg.eval.resize_shorter, cfg.eval.crop) == (176, 232, 224)
    assert cfg.loader.repeated_augment == 4  # --ra-sampler --ra-reps 4
    ffcv = load_config(REPO / "configs" / "recipe_ffcv_rn50.yaml").train.size_schedule
    assert (ffcv.min_res, ffcv.max_res, ffcv.start_ramp, ffcv.end_ramp) == (160, 192, 65, 76)
    timm = load_config(REPO / "configs" / "recipe_timm_rsb.yaml")
    assert timm.train.interpolation == "bicubic" and timm.train.auto_augment.magnitude == 7


def test_reference_transform_puts_the_augmentations_where_torchvisions_presets_do():
    from torchvision.transforms import v2

    from dalinorm.integration.reference import reference_transform

    cfg = load_config(REPO / "configs" / "recipe_torchvision_rn50.yaml", SAMPLE)
    names = [type(t).__name__ for t in reference_transform(cfg, "train").transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "TrivialAugmentWide",
                     "PILToTensor", "ToDtype", "Normalize", "RandomErasing"]
    cfg = load_config(REPO / "configs" / "sample.yaml",
                      ["train.color_jitter={brightness: 0.4, hue: 0.1}", "train.auto_augment=rand_augment"])
    t = reference_transform(cfg, "train").transforms
    assert isinstance(t[2], v2.ColorJitter) and isinstance(t[3], v2.RandAugment)
    assert t[2].contrast is None and t[2].hue == (-0.1, 0.1)
    assert [type(x).__name__ for x in reference_transform(cfg, "val").transforms][:2] == ["Resize", "CenterCrop"]


@pytest.mark.parametrize("extra", [
    [],  # with TrivialAugmentWide: the unfused path
    ["train.auto_augment=none", "output.layout=NHWC"],  # erasing alone: the fused resize+normalize
])
def test_both_loaders_run_the_recipe_and_dali_erases_a_box_of_the_value(extra):
    """One epoch of the sample data through DaliLoader with TrivialAugmentWide and erasing at
    p = 1 with a value no normalized pixel takes: every image holds one axis-aligned box of it;
    the reference DataLoader yields the same shapes."""
    from dalinorm import DaliLoader
    from dalinorm.integration.reference import reference_loader

    cfg = load_config(REPO / "configs" / "recipe_torchvision_rn50.yaml",
                      SAMPLE + ["train.size=64", "train.random_erase={probability: 1.0, value: [9.0]}"]
                      + extra)
    loader = DaliLoader(cfg, "train")
    boxes = 0
    for images, labels in loader:
        assert images.shape == (8, 3, 64, 64) and labels.shape == (8,)
        marked = (images == 9.0).all(dim=1).numpy()  # [N, H, W]
        for m in marked:
            if not m.any():  # no attempt fitted (rare at scale 0.02-0.33)
                continue
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            assert m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one full rectangle
            assert m.sum() == len(rows) * len(cols)
            boxes += 1
    assert boxes >= 40  # of 56 images: nearly all fit
    ref = reference_loader(cfg, "train", num_workers=0)
    images, labels = next(iter(ref))
    assert images.shape == (8, 3, 64, 64)


@pytest.mark.slow  # three training subprocesses
@pytest.mark.parametrize("name", RECIPES)
def test_examples_train_runs_each_recipe_on_the_sample_data(name):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "train.py"),
                           str(REPO / "configs" / f"{name}.yaml"), "--sample-data", "--model", "small",
                           "--epochs", "1", "--set", "train.size=64", "--set", "eval.resize_shorter=73",
                           "--set", "eval.crop=64"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"epoch 1/1  loss [\d.]+", proc.stderr)


def test_bench_baselines_run_the_recipes_augmentations_in_their_workers():
    from dalinorm.commands.bench import plain_transform

    cfg = load_config(REPO / "configs" / "recipe_torchvision_rn50.yaml", SAMPLE)
    for v2 in (False, True):
        names = [type(t).__name__ for t in plain_transform(cfg, "train", v2=v2).transforms]
        assert names[2] == "TrivialAugmentWide" and names[-1] == "RandomErasing", names
        assert "TrivialAugmentWide" not in [type(t).__name__ for t in
                                            plain_transform(cfg, "val", v2=v2).transforms]


def test_resume_mid_epoch_with_the_policy_and_erasing_is_exact(tmp_path):
    """The policies' and the erasing's draws are DALI random operators inside the conditional
    pipeline: a DALI checkpoint restores them, so a resumed run gives the same batches."""
    import pickle

    from testkit import make_config, tensor_digest, write_textured_folder

    from dalinorm import DaliLoader

    root = tmp_path / "data"
    write_textured_folder(root, split="val", n=21, seed=1)
    write_textured_folder(root, n=21)
    cfg = make_config(root, "train.auto_augment=trivial_augment_wide", "train.random_erase=0.5",
                      "train.color_jitter={brightness: 0.3, saturation: 0.3}")

    def read(loader, n):
        out = []
        while len(out) < n:
            for images, labels in loader:
                out.append((tuple(labels.tolist()), tensor_digest(images)))
                if len(out) == n:
                    break
        return out

    whole = read(DaliLoader(cfg, "train"), 9)
    first = DaliLoader(cfg, "train")
    head = read(first, 3)
    state = pickle.loads(pickle.dumps(first.state_dict()))
    first.close()
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    assert head + read(resumed, 6) == whole
