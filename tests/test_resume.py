"""Resuming a train loader mid-epoch yields exactly the batches of the uninterrupted run.

The images are textured (tests/testkit.py ``natural_image``), each one distinct everywhere, and
a batch is identified by its labels and a digest of its exact values: a resume that kept the
reader's place but lost the crop/flip RNG state gives other crops of the same images, and so
another digest. (Flat colours would hide that: every crop of a flat image has the same sum.)"""

from __future__ import annotations

import pickle

import pytest
from dalinorm import DaliLoader
from dalinorm.errors import UsageError
from testkit import DEVICES, make_config, tensor_digest, write_textured_folder


@pytest.fixture(scope="module")
def textured(tmp_path_factory):
    """37 textured train and val images in 3 classes: 7 batches of 5 per epoch (drop_last)."""
    root = tmp_path_factory.mktemp("resume") / "data"
    write_textured_folder(root, split="val", n=37, seed=1)
    return write_textured_folder(root, n=37)


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


def test_state_saved_after_the_last_batch_resumes_into_the_next_epoch(textured):
    # A loop that takes len() batches and stops without asking for another (Lightning's fit
    # loop) saves its state there: the resumed loader's next iteration is the next epoch,
    # whole, not the unread padding of the finished one as an empty epoch.
    cfg = make_config(textured.root)
    whole = DaliLoader(cfg, "train")
    epochs = [[fingerprint(*b) for b in whole] for _ in range(2)]
    first = DaliLoader(cfg, "train")
    batches = iter(first)
    for _ in range(len(first)):
        next(batches)
    state = first.state_dict()
    first.close()
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    assert [fingerprint(*b) for b in resumed] == epochs[1]
    assert resumed.epoch == 2


def test_state_from_other_data_or_seed_is_refused(colour_data):
    train, _ = colour_data
    loader = DaliLoader(make_config(train.root), "train")
    read(loader, 2)
    state = loader.state_dict()
    other = DaliLoader(make_config(train.root, "loader.seed=99"), "train")
    with pytest.raises(ValueError, match="loader state: seed is 7 in the checkpoint but 99 here"):
        other.load_state_dict(state)


def test_state_of_the_older_cpu_policy_graph_is_refused(textured):
    """States of version 1 were saved by the train graph before the CPU policy's one-operator
    train step, which draws other random streams from the same seed: with a CPU policy they
    are refused in one line; without one the graph is unchanged and they still load."""
    for policy, refused in (("trivial_augment_wide", True), ("none", False)):
        cfg = make_config(textured.root, f"train.auto_augment={policy}")
        whole = read(DaliLoader(cfg, "train"), 3)
        loader = DaliLoader(cfg, "train")
        read(loader, 2)
        state = dict(loader.state_dict(), version=1)
        fresh = DaliLoader(cfg, "train")
        if refused:
            with pytest.raises(UsageError, match=r"load_state_dict\(\): this state was saved by "
                                                 r"an older dalinorm"):
                fresh.load_state_dict(state)
        else:
            fresh.load_state_dict(state)
            assert read(fresh, 1) == whole[2:]


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
    from dalinorm.commands.pack import pack_split

    train = textured
    pack_split(make_config(train.root), split="train", out=tmp_path / "train", shard_size=20_000)
    cfg = make_config(tmp_path, "data.format=webdataset", "data.shuffle_buffer=6")
    whole = read(DaliLoader(cfg, "train"), 17)
    first = DaliLoader(cfg, "train")
    head = read(first, 9)
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(pickle.loads(pickle.dumps(first.state_dict())))
    assert head + read(resumed, 8) == whole


@pytest.mark.parametrize("split", ["train", "val"])
def test_breaking_out_of_an_epoch_then_iterating_gives_the_next_epoch(textured, split, caplog):
    """`break` after one batch, iterate again: the next epoch is the uninterrupted run's next
    epoch (same labels, crops and flips). Train decodes and discards the rest, and says how
    many batches at INFO; eval restarts a fresh pipeline at the first file, decoding nothing."""
    import logging

    cfg = make_config(textured.root, "loader.drop_last=false")
    whole = DaliLoader(cfg, split)
    epochs = [[fingerprint(x, y) for x, y in whole] for _ in range(2)]
    per_epoch = len(epochs[0])
    assert per_epoch == 8 and (epochs[0] != epochs[1]) == (split == "train")
    left = DaliLoader(cfg, split)
    with caplog.at_level(logging.INFO, logger="dalinorm"):
        for images, labels in left:
            first = fingerprint(images, labels)
            break
        again = [fingerprint(x, y) for x, y in left]
    assert first == epochs[0][0]
    assert again == epochs[1] and left.epoch == 2
    if split == "train":
        assert f"epoch left after 1 of {per_epoch} batches; decoding and discarding the remaining " \
               f"{per_epoch - 1} batches" in caplog.text
    else:
        assert f"epoch left after 1 of {per_epoch} batches; restarting at the first file" in caplog.text
