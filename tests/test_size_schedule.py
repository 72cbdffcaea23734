"""Progressive resizing (``train.size_schedule``): FFCV's sizes per epoch, fed to the graph at
run time (one pipeline, no operator compiled again), resumed exactly, and followed by the
reference path."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from dalinorm import DaliLoader
from dalinorm.config import ConfigError, SizeSchedule, config_from_dict
from testkit import DEVICES, make_config, tensor_digest, write_textured_folder

# sizes 16, 32, 48 in epochs 0, 1, 2 (FFCV's epochs count from 0; the loader's from 1)
RAMP = "train.size_schedule={min_res: 16, max_res: 48, start_ramp: 0, end_ramp: 2, step: 16}"


def ffcv_get_resolution(epoch, min_res, max_res, end_ramp, start_ramp, step=32):
    """FFCV's ImageNet example (ffcv-imagenet train_imagenet.py, get_resolution), with its
    hard-coded 32 as ``step``: the reference the schedule must equal."""
    assert min_res <= max_res
    if epoch <= start_ramp:
        return min_res
    if epoch >= end_ramp:
        return max_res
    interp = np.interp([epoch], [start_ramp, end_ramp], [min_res, max_res])
    return int(np.round(interp[0] / step)) * step


@pytest.mark.parametrize("params", [
    dict(min_res=160, max_res=192, start_ramp=65, end_ramp=76),  # FFCV rn50_88_epochs.yaml
    dict(min_res=160, max_res=192, start_ramp=11, end_ramp=13),  # FFCV rn50_16_epochs.yaml
    dict(min_res=128, max_res=256, start_ramp=3, end_ramp=20, step=32),
    dict(min_res=150, max_res=301, start_ramp=2, end_ramp=41, step=16),  # ends off the step
    dict(min_res=96, max_res=224, start_ramp=5, end_ramp=5, step=8),  # a jump, no ramp
    dict(min_res=100, max_res=200, start_ramp=0, end_ramp=8, step=1),
])
def test_size_per_epoch_is_ffcvs_formula(params):
    schedule = SizeSchedule(**params)
    expected = [ffcv_get_resolution(e, **params) for e in range(params["end_ramp"] + 5)]
    assert [schedule.size_at(e) for e in range(len(expected))] == expected
    # a half-way tie rounds to even as np.round does: 16 + 8 = 24 = 1.5 steps of 16 → 32
    assert SizeSchedule(min_res=16, max_res=32, start_ramp=0, end_ramp=2, step=16).size_at(1) == 32


@pytest.mark.parametrize("values, key, message", [
    ("{start_ramp: 9, end_ramp: 4}", "train.size_schedule.end_ramp", "out of order"),
    ("{min_res: 224, max_res: 160}", "train.size_schedule.max_res", "must be >= min_res (224)"),
    ("{step: 0}", "train.size_schedule.step", "must be >= 1"),
    ("{start_ramp: -1}", "train.size_schedule.start_ramp", "epoch >= 0"),
    ("{min_rez: 160}", "train.size_schedule.min_rez", "did you mean 'min_res'"),
    ("160", "train.size_schedule", "must be a mapping"),
])
def test_bad_schedules_are_one_line_errors_with_the_key(values, key, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({}, overrides=[f"train.size_schedule={values}"])
    text = str(err.value)
    assert text.startswith(key + ":") and message in text and "\n" not in text


def epoch_batches(loader):
    return [(tuple(y.tolist()), tuple(x.shape), tensor_digest(x)) for x, y in loader]


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """37 textured images in 3 classes: 7 batches of 5 per epoch (drop_last)."""
    return write_textured_folder(tmp_path_factory.mktemp("schedule") / "data", n=37)


@pytest.mark.parametrize("device", DEVICES)
def test_each_epoch_has_its_size_from_one_pipeline_compiled_once(textured, device):
    from dalinorm.pipelines import resample

    loader = DaliLoader(make_config(textured.root, RAMP, f"loader.device={device}"), "train")
    pipeline = loader._pipeline
    first = epoch_batches(loader)
    # what was compiled for the first size serves every later one: no operator kind is
    # added, no numba function gets another specialization, the pipeline is not rebuilt
    kinds, signatures = resample.compiled_operator_kinds(), len(resample._resample_into.signatures)
    later = [epoch_batches(loader) for _ in range(3)]
    assert resample.compiled_operator_kinds() == kinds
    assert len(resample._resample_into.signatures) == signatures
    assert loader._pipeline is pipeline
    for epoch, batches in enumerate([first, *later], start=1):
        size = loader.size_at(epoch)
        assert size == [16, 32, 48, 48][epoch - 1]
        assert {shape for _, shape, _ in batches} == {(5, 3, size, size)}, epoch


@pytest.mark.parametrize("device", DEVICES)
def test_a_constant_schedule_is_the_fixed_size_graph_exactly(textured, device):
    # the run-time size changes nothing else: the same crops, flips and values as train.size
    fixed = DaliLoader(make_config(textured.root, "train.size=32", f"loader.device={device}"), "train")
    flat = DaliLoader(make_config(textured.root, f"loader.device={device}",
                                  "train.size_schedule={min_res: 32, max_res: 32}"), "train")
    assert [epoch_batches(fixed) for _ in range(2)] == [epoch_batches(flat) for _ in range(2)]


def read(loader, batches: int) -> list[tuple]:
    out = []
    while len(out) < batches:
        for images, labels in loader:
            out.append((tuple(labels.tolist()), tuple(images.shape), tensor_digest(images)))
            if len(out) == batches:
                break
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stop_after", [3, 7, 10])  # epoch 1 (16), its end, epoch 2 (32)
def test_resume_at_a_changed_size_is_exact(textured, device, stop_after):
    cfg = make_config(textured.root, RAMP, f"loader.device={device}")
    whole = read(DaliLoader(cfg, "train"), 17)
    assert [shape[2] for _, shape, _ in whole] == [16] * 7 + [32] * 7 + [48] * 3
    first = DaliLoader(cfg, "train")
    head = read(first, stop_after)
    state = pickle.loads(pickle.dumps(first.state_dict()))
    first.close()
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    assert resumed.size == (32 if stop_after > 7 else 16)  # the epoch it stopped in
    assert head + read(resumed, 17 - stop_after) == whole
    assert resumed.size == 48


def test_the_reference_path_follows_the_schedule(textured):
    from dalinorm.integration.reference import reference_loader

    cfg = make_config(textured.root, RAMP)
    loader = reference_loader(cfg, "train", num_workers=0)
    sizes = [{tuple(x.shape[2:]) for x, _ in loader} for _ in range(3)]
    assert sizes == [{(16, 16)}, {(32, 32)}, {(48, 48)}]
    loader.sampler.set_epoch(1)  # torchvision's references call it each epoch
    assert {tuple(x.shape[2:]) for x, _ in loader} == {(32, 32)}
    # the order is the unscheduled one: the same labels, epoch for epoch
    plain = reference_loader(make_config(textured.root), "train", num_workers=0)
    scheduled = reference_loader(cfg, "train", num_workers=0)
    for _ in range(2):
        assert [y.tolist() for _, y in plain] == [y.tolist() for _, y in scheduled]


def test_validate_explains_both_keys(tmp_path, capsys):
    from dalinorm import cli

    config = tmp_path / "ffcv.yaml"
    config.write_text("train:\n  size_schedule: {min_res: 160, max_res: 192, start_ramp: 65, "
                      "end_ramp: 76}\nloader:\n  repeated_augment: 4\n")
    assert cli.main(["validate", str(config)]) == 0
    out = capsys.readouterr().out
    # FFCV's rn50_88_epochs ramp: 0-based epochs 0-70 at 160, 71 on at 192
    assert "# train.size_schedule: FFCV's progressive resizing (get_resolution): 160 in epochs " \
           "1-71, 192 from epoch 72" in out
    assert "# loader.repeated_augment: torchvision RASampler(repetitions=4)" in out
    assert cli.main(["validate", str(config), "--set", "loader.repeated_augment=1"]) == 0
    assert "# loader.repeated_augment: 1 (off" in capsys.readouterr().out
