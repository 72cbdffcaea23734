"""Resuming a train loader mid-epoch yields exactly the batches of the uninterrupted run.

The images are textured (tests/testkit.py ``natural_image``), each one distinct everywhere, and
a batch is identified by its labels and a digest of its exact values: a resume that kept the
reader's place but lost the crop/flip RNG state gives other crops of the same images, and so
another digest. (Flat colours would hide that: every crop of a flat image has the same sum.)"""

from __future__ import annotations

import pickle

import pytest

from dalinorm import DaliLoader

from testkit import DEVICES, make_config, tensor_digest, write_textured_folder


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """37 textured train images in 3 classes: 7 batches of 5 per epoch (drop_last)."""
    return write_textured_folder(tmp_path_factory.mktemp("resume") / "data", n=37)


def fingerprint(images, labels) -> tuple:
    """What a batch is: its labels and a digest of its exact values (crops, flips, order)."""
    return tuple(labels.cpu().tolist()), tensor_digest(images)


def read(loader, batches: int) -> list[tuple]:
    """The next ``batches`` batches, across epoch boundaries, as a training loop reads them."""
    out = []
    while len(out) < batches:
        for images, labels in loader:
            out.append(fingerprint(images, labels))
            if len(out) == batches:
                break
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stop_after", [3, 7, 9])  # mid-epoch, at an epoch end (7 per epoch), next epoch
def test_resume_mid_epoch_is_exact(textured, device, stop_after):
    train = textured
    cfg = make_config(train.root, f"loader.device={device}")
    whole = read(DaliLoader(cfg, "train"), 17)

    first = DaliLoader(cfg, "train")
    head = read(first, stop_after)
    state = pickle.loads(pickle.dumps(first.state_dict()))  # as saved with a checkpoint
    first.close()
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    tail = read(resumed, 17 - stop_after)
    assert head + tail == whole
    assert resumed.epoch == 3


def test_state_from_other_data_or_seed_is_refused(colour_data):
    train, _ = colour_data
    loader = DaliLoader(make_config(train.root), "train")
    read(loader, 2)
    state = loader.state_dict()
    other = DaliLoader(make_config(train.root, "loader.seed=99"), "train")
    with pytest.raises(ValueError, match="loader state: seed is 7 in the checkpoint but 99 here"):
        other.load_state_dict(state)


def test_state_before_any_batch_restarts_cleanly(textured):
    train = textured
    cfg = make_config(train.root)
    fresh = DaliLoader(cfg, "train")
    state = fresh.state_dict()
    restored = DaliLoader(cfg, "train")
    restored.load_state_dict(state)
    assert read(restored, 5) == read(DaliLoader(cfg, "train"), 5)


def test_state_saved_right_after_a_restore_still_resumes(textured):
    """A checkpoint written before the first batch after a restore keeps the restored place."""
    train = textured
    cfg = make_config(train.root)
    whole = read(DaliLoader(cfg, "train"), 9)
    first = DaliLoader(cfg, "train")
    read(first, 4)
    second = DaliLoader(cfg, "train")
    second.load_state_dict(first.state_dict())
    third = DaliLoader(cfg, "train")
    third.load_state_dict(second.state_dict())  # saved again before reading anything
    assert read(third, 5) == whole[4:]


def test_resume_over_a_webdataset_pack_is_exact(textured, tmp_path):
    """The shuffle buffer's state travels in DALI's checkpoint too."""
    from dalinorm.pipelines.webdataset import pack_split

    train = textured
    pack_split(make_config(train.root), split="train", out=tmp_path / "train", shard_size=20_000)
    cfg = make_config(tmp_path, "data.format=webdataset", "data.shuffle_buffer=6")
    whole = read(DaliLoader(cfg, "train"), 17)
    first = DaliLoader(cfg, "train")
    head = read(first, 9)
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    assert head + read(resumed, 8) == whole
