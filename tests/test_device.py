"""Which device decodes: loader.device, DaliLoader(device=), LOCAL_RANK, the current CUDA device.

Under torchrun every rank must decode on its own GPU (LOCAL_RANK), also when the user did not
call torch.cuda.set_device: the selection is a pure function, tested here on the CPU with the
environment a launcher sets, and once on a real GPU through DaliLoader.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from dalinorm import ConfigError, DaliLoader, DalinormError
import dalinorm.pipelines.device as device_module
from dalinorm.pipelines.device import (
    DeviceError,
    choose_device,
    distributed_rank_world,
    resolve_device_id,
)

from testkit import make_config, needs_cuda


def choose(loader_device="auto", requested=None, *, env=None, cuda_devices=8, dist=False, current=0):
    return choose_device(loader_device, requested, env=env or {}, cuda_devices=cuda_devices,
                         dist_initialized=dist, current_device=current if cuda_devices else None)


@pytest.mark.parametrize("dist", [False, True])
@pytest.mark.parametrize("local_rank", [0, 3, 7])
def test_local_rank_picks_the_gpu_of_each_rank(local_rank, dist):
    """torchrun on 8 GPUs without set_device: every rank's current device is 0."""
    choice = choose(env={"LOCAL_RANK": str(local_rank)}, dist=dist, current=0)
    assert choice.device_id == local_rank
    assert f"LOCAL_RANK={local_rank}" in choice.reason
    if local_rank == 0:
        assert choice.warning is None
    else:
        assert choice.warning.startswith(f"LOCAL_RANK is {local_rank} but torch.cuda.current_device() is 0")
        assert f"torch.cuda.set_device({local_rank})" in choice.warning


def test_no_warning_when_set_device_was_called():
    assert choose(env={"LOCAL_RANK": "5"}, dist=True, current=5).warning is None


def test_without_launcher_the_current_device():
    assert choose(current=2).device_id == 2
    choice = choose(current=0, dist=True)  # e.g. mp.spawn without LOCAL_RANK
    assert choice.device_id == 0 and "LOCAL_RANK is not set" in choice.reason


@pytest.mark.parametrize("requested, expected", [
    (3, 3), (np.int64(6), 6), ("cuda:3", 3), ("CUDA:6", 6),
    (torch.device("cuda", 5), 5), (torch.device("cuda:1"), 1),
    ("cuda", 4), (torch.device("cuda"), 4),  # no index: the current device
])
def test_explicit_device_wins_over_local_rank(requested, expected):
    choice = choose(requested=requested, env={"LOCAL_RANK": "2"}, current=4)
    assert choice.device_id == expected and choice.warning is None


@pytest.mark.parametrize("requested", ["cpu", torch.device("cpu")])
def test_explicit_cpu(requested):
    assert choose(requested=requested, env={"LOCAL_RANK": "2"}).device_id is None
    assert choose(requested=requested, cuda_devices=0).device_id is None


@pytest.mark.parametrize("requested", [None, "cpu"])
def test_loader_device_cpu_is_the_cpu_regardless(requested):
    choice = choose("cpu", requested, env={"LOCAL_RANK": "3"}, current=1)
    assert choice.device_id is None and choice.warning is None


def test_no_cuda():
    assert choose("auto", cuda_devices=0, env={"LOCAL_RANK": "1"}).device_id is None
    with pytest.raises(ConfigError, match=r"^loader.device: 'gpu' was requested but PyTorch sees no CUDA"):
        choose("gpu", cuda_devices=0)
    with pytest.raises(DeviceError, match=r"^device: 'cuda:0' asks for a GPU but PyTorch sees no CUDA"):
        choose("auto", "cuda:0", cuda_devices=0)


@pytest.mark.parametrize("raw, message", [
    ("zero", r"^LOCAL_RANK: 'zero' is not an integer"),
    ("", r"^LOCAL_RANK: '' is not an integer"),
    ("-1", r"^LOCAL_RANK: -1, expected an int >= 0"),
])
def test_bad_local_rank_is_one_line_naming_it(raw, message):
    with pytest.raises(DeviceError, match=message) as err:
        choose(env={"LOCAL_RANK": raw})
    assert isinstance(err.value, DalinormError) and "\n" not in str(err.value)


def test_bad_local_rank_is_ignored_when_not_used():
    assert choose(requested=1, env={"LOCAL_RANK": "zero"}).device_id == 1
    assert choose("cpu", env={"LOCAL_RANK": "zero"}).device_id is None


@pytest.mark.parametrize("requested, message", [
    ("cuda:8", r"^device: 'cuda:8', but PyTorch sees 8 CUDA device\(s\) \(ordinals 0 to 7\)"),
    (8, r"^device: 8, but PyTorch sees 8 CUDA device"),
    (-1, r"^device: expected an int >= 0, 'cpu', 'cuda', 'cuda:N' or a torch.device, got -1$"),
    (True, r"^device: expected an int >= 0, .* got True$"),
    ("gpu", r"^device: expected an int >= 0, .* got 'gpu'$"),
    ("cuda:x", r"^device: expected .* got 'cuda:x'$"),
    (torch.device("meta"), r"^device: expected .* got device\(type='meta'\)$"),
    (1.0, r"^device: expected .* got 1.0$"),
])
def test_bad_device_argument_is_one_line_naming_it(requested, message):
    with pytest.raises(DeviceError, match=message):
        choose(requested=requested)


def test_contradicting_loader_device_is_an_error():
    with pytest.raises(DeviceError, match=r"^device: 'cuda:1' asks for a GPU but loader.device is 'cpu'"):
        choose("cpu", "cuda:1")
    with pytest.raises(DeviceError, match=r"^device: 'cpu' contradicts loader.device: gpu"):
        choose("gpu", "cpu")


def test_resolve_reads_the_live_environment(monkeypatch):
    """On this machine (CPU-only or not): the same answer as choose_device with its values."""
    monkeypatch.setenv("LOCAL_RANK", "not-a-number")
    assert resolve_device_id("cpu") is None  # loader.device: cpu never looks at LOCAL_RANK
    if not torch.cuda.is_available():
        assert resolve_device_id("auto") is None
        return
    with pytest.raises(DeviceError, match=r"^LOCAL_RANK: 'not-a-number' is not an integer"):
        resolve_device_id("auto")
    monkeypatch.setenv("LOCAL_RANK", str(torch.cuda.device_count() - 1))
    assert resolve_device_id("auto") == torch.cuda.device_count() - 1


@pytest.mark.parametrize("rank, world_size, message", [
    (1, None, r"^world_size: missing: rank was given, so pass world_size too"),
    (None, 2, r"^rank: missing: world_size was given, so pass rank too"),
    (2, 2, r"^rank: 2, expected 0 <= rank < world_size \(2\)$"),
    (-1, 2, r"^rank: -1, expected 0 <= rank < world_size \(2\)$"),
    (0, 0, r"^world_size: 0, expected an int >= 1$"),
    ("0", 2, r"^rank: '0', expected 0 <= rank"),
])
def test_bad_rank_world_is_one_line_naming_the_argument(rank, world_size, message):
    with pytest.raises(DeviceError, match=message) as err:
        distributed_rank_world(rank, world_size)
    assert isinstance(err.value, DalinormError) and isinstance(err.value, ValueError)


def test_dali_loader_device_argument_on_the_cpu(colour_data, monkeypatch):
    _, val = colour_data
    monkeypatch.setenv("LOCAL_RANK", "not-a-number")  # ignored: the CPU was asked for
    loader = DaliLoader(make_config(val.root, "loader.device=auto"), "val", device="cpu")
    x, y = next(iter(loader))
    assert loader.device == "cpu" and x.device.type == y.device.type == "cpu"
    with pytest.raises(DeviceError, match=r"^device: 'cuda:0' asks for a GPU but loader.device is 'cpu'"):
        DaliLoader(make_config(val.root, "loader.device=cpu"), "val", device="cuda:0")


@needs_cuda
@pytest.mark.cuda
def test_dali_loader_decodes_on_local_rank_gpu(colour_data, monkeypatch, caplog):
    """A torchrun-like process without set_device: LOCAL_RANK decides the GPU of the batches."""
    train, val = colour_data
    last = torch.cuda.device_count() - 1
    monkeypatch.setenv("LOCAL_RANK", str(last))
    assert torch.cuda.current_device() == 0  # nobody called set_device
    caplog.set_level(logging.WARNING, logger="dalinorm.pipelines.device")
    monkeypatch.setattr(device_module, "_warned", set())  # each warning is logged once per process
    for data, split in ((train, "train"), (val, "val")):
        loader = DaliLoader(make_config(data.root, "loader.device=gpu"), split)
        x, y = next(iter(loader))
        assert loader.device == f"cuda:{last}"
        assert x.device == y.device == torch.device("cuda", last)
        assert x.is_cuda and torch.isfinite(x.float()).all()
    warned = [r.getMessage() for r in caplog.records if "LOCAL_RANK" in r.getMessage()]
    assert bool(warned) == (last != 0)  # a warning only when current device and LOCAL_RANK differ
    explicit = DaliLoader(make_config(val.root, "loader.device=gpu"), "val", device=f"cuda:{last}")
    assert next(iter(explicit))[0].device == torch.device("cuda", last)
    monkeypatch.setenv("LOCAL_RANK", str(last + 1))  # one GPU per process: beyond what it sees
    beyond = DaliLoader(make_config(val.root, "loader.device=gpu"), "val")
    assert beyond.device == f"cuda:{torch.cuda.current_device()}"


def test_local_rank_beyond_the_visible_devices_falls_back_to_the_current_one():
    # SLURM --gpus-per-task=1: each process sees one GPU (CUDA_VISIBLE_DEVICES) while
    # LOCAL_RANK counts the node's processes; the visible GPU is the right one.
    choice = choose(env={"LOCAL_RANK": "3"}, cuda_devices=1, current=0)
    assert choice.device_id == 0
    assert "LOCAL_RANK is 3 but PyTorch sees 1 CUDA device(s)" in choice.warning
    assert "device=" in choice.warning

