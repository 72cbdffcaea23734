"""Repeated augmentation (``loader.repeated_augment: K``): torchvision's RASampler order on
every rank, each repeat augmented on its own, deterministic from the seed, resumable, and
the same indices on the reference path."""

from __future__ import annotations

import collections
import math
import pickle

import pytest
import torch
from dalinorm import DaliLoader
from dalinorm.config import ConfigError
from dalinorm.data.repeated_augment import ra_epoch_indices, ra_samples_per_rank
from testkit import DEVICES, make_config, tensor_digest, write_textured_folder

N = 300  # RASampler keeps n // 256 * 256 / world samples per rank: at least 256 images


def rasampler_reference(n: int, repetitions: int, world: int, rank: int, seed: int, epoch: int):
    """torchvision's references/classification/sampler.py RASampler.__iter__, written anew
    from its source's semantics (torch tensors here, lists there)."""
    g = torch.Generator()
    g.manual_seed(seed + epoch)
    perm = torch.randperm(n, generator=g)
    repeated = perm.repeat_interleave(repetitions)
    num_samples = int(math.ceil(n * float(repetitions) / world))
    total = num_samples * world
    repeated = torch.cat([repeated, repeated[: total - repeated.numel()]])
    assert repeated.numel() == total
    mine = repeated[rank:total:world]
    assert mine.numel() == num_samples
    num_selected = int(math.floor(n // 256 * 256 / world))
    return mine[:num_selected].tolist()


@pytest.mark.parametrize("n, k, world", [(300, 3, 1), (300, 3, 2), (1000, 4, 3), (257, 2, 4),
                                         (600, 3, 5), (256, 1, 1), (5000, 3, 8)])
def test_indices_are_rasamplers(n, k, world):
    for epoch in range(3):
        for rank in range(world):
            ours = ra_epoch_indices(n, repetitions=k, world_size=world, rank=rank, seed=11, epoch=epoch)
            assert ours == rasampler_reference(n, k, world, rank, 11, epoch), (epoch, rank)
    assert ra_samples_per_rank(n, world) == len(ours) == n // 256 * 256 // world


@pytest.mark.parametrize("n, k, world", [(300, 3, 2), (1000, 4, 4), (600, 3, 5)])
def test_each_image_k_times_over_the_ranks_which_take_disjoint_positions(n, k, world):
    ranks = [ra_epoch_indices(n, repetitions=k, world_size=world, rank=r, seed=0, epoch=1)
             for r in range(world)]
    # the ranks' entries interleaved are a prefix of one global list (each position on one
    # rank), and in it every image is there K times, but the one the prefix cuts
    merged = [index for column in zip(*ranks) for index in column]
    counts = collections.Counter(merged)
    assert len(merged) == world * ra_samples_per_rank(n, world)
    assert sorted(counts.values())[1:] == [k] * (len(counts) - 1) and 1 <= min(counts.values())
    groups = [merged[i:i + k] for i in range(0, len(merged) - k + 1, k)]
    assert all(len(set(g)) == 1 for g in groups)  # K in a row, an image each
    if world >= k:  # the K copies of an image are augmented on K different ranks
        where = collections.defaultdict(set)
        for r, indices in enumerate(ranks):
            for index in indices:
                where[index].add(r)
        assert all(len(where[i]) == counts[i] for i in counts)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """300 small textured images, each its own class: a label names the image."""
    root = tmp_path_factory.mktemp("ra") / "data"
    return write_textured_folder(root, n=N, classes=N, sizes=((40, 30), (30, 40), (36, 36)))


def ra_config(root, *overrides):
    return make_config(root, "loader.repeated_augment=3", "loader.batch_size=20", "train.size=16",
                       *overrides)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("drop_last", [True, False])
def test_dali_loader_reads_rasamplers_order_on_every_rank(dataset, device, drop_last):
    cfg = ra_config(dataset.root, f"loader.device={device}", f"loader.drop_last={drop_last}")
    world = 2
    per_rank = ra_samples_per_rank(N, world)  # 128: 6 full batches of 20 and 8
    for rank in range(world):
        loader = DaliLoader(cfg, "train", rank=rank, world_size=world)
        assert len(loader) == (per_rank // 20 if drop_last else math.ceil(per_rank / 20))
        for epoch in range(2):
            labels = [label for _, y in loader for label in y.tolist()]
            expected = rasampler_reference(N, 3, world, rank, 7, epoch)
            assert labels == expected[: len(loader) * 20 if drop_last else per_rank]


@pytest.mark.parametrize("device", DEVICES)
def test_repeats_are_augmented_independently_and_runs_are_deterministic(dataset, device):
    cfg = ra_config(dataset.root, f"loader.device={device}")
    first = DaliLoader(cfg, "train")
    epochs = [[(y.tolist(), [tensor_digest(img) for img in x]) for x, y in first] for _ in range(2)]
    again = DaliLoader(cfg, "train")
    assert [[(y.tolist(), [tensor_digest(img) for img in x]) for x, y in again]
            for _ in range(2)] == epochs
    # the three copies of an image sit side by side on one rank: three different crops/flips
    labels = [label for batch, _ in epochs[0] for label in batch]
    digests = [d for _, batch in epochs[0] for d in batch]
    copies = collections.defaultdict(set)
    for label, digest in zip(labels, digests):
        copies[label].add(digest)
    full = [label for label, count in collections.Counter(labels).items() if count == 3]
    assert full and all(len(copies[label]) == 3 for label in full)
    other = DaliLoader(ra_config(dataset.root, f"loader.device={device}", "loader.seed=8"), "train")
    assert [y.tolist() for _, y in other] != [batch for batch, _ in epochs[0]]


def read(loader, batches: int) -> list[tuple]:
    out = []
    while len(out) < batches:
        for images, labels in loader:
            out.append((tuple(labels.tolist()), tensor_digest(images)))
            if len(out) == batches:
                break
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stop_after", [5, 12, 15])  # mid-epoch, its end (12 of 20), the next
def test_resume_mid_epoch_is_exact(dataset, device, stop_after):
    cfg = ra_config(dataset.root, f"loader.device={device}",
                    "train.size_schedule={min_res: 16, max_res: 24, end_ramp: 1, step: 8}")
    whole = read(DaliLoader(cfg, "train"), 20)
    first = DaliLoader(cfg, "train")
    head = read(first, stop_after)
    state = pickle.loads(pickle.dumps(first.state_dict()))
    first.close()
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    assert head + read(resumed, 20 - stop_after) == whole


def test_breaking_out_of_an_epoch_gives_the_next_epoch_whole(dataset):
    cfg = ra_config(dataset.root)
    whole = DaliLoader(cfg, "train")
    epochs = [read(whole, len(whole)) for _ in range(2)]
    left = DaliLoader(cfg, "train")
    for _ in left:
        break
    assert read(left, len(left)) == epochs[1] and left.epoch == 2


def test_the_next_epochs_pipeline_is_built_before_this_epoch_ends(dataset):
    """The pipeline of epoch 2 is built and prefetching once epoch 1's last run is scheduled,
    and epoch 2 is what a pipeline built at its start gives (resumed from the state at the end
    of epoch 1: no early build); test_resume_mid_epoch_is_exact resumes inside such an epoch."""
    cfg = ra_config(dataset.root)
    loader = DaliLoader(cfg, "train")
    batches = iter(loader)
    for _ in range(len(loader) - 1):
        next(batches)
    assert loader._ahead is not None and loader._ahead[0] == 2
    assert len(list(batches)) == 1
    state = loader.state_dict()
    early = read(loader, len(loader))
    assert loader._ahead is not None and loader._ahead[0] == 3  # and so on, epoch by epoch
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    assert resumed._ahead is None and read(resumed, len(resumed)) == early


def test_batches_outlive_their_epochs_pipeline_and_the_loader(dataset):
    """The batches are DALI's own buffers (no copy): one kept from epoch 1 keeps its values
    after epoch 1's pipeline is dropped for epoch 2's, after a collection, and after close()."""
    import gc

    loader = DaliLoader(ra_config(dataset.root), "train")
    kept = [(x, tensor_digest(x)) for x, _ in loader][-2:]  # epoch 1's last two batches
    for _ in loader:  # epoch 2, its own pipeline (epoch 3's built at its end)
        pass
    gc.collect()
    assert [tensor_digest(x) for x, _ in kept] == [d for _, d in kept]
    loader.close()
    del loader
    gc.collect()
    assert [tensor_digest(x) for x, _ in kept] == [d for _, d in kept]


def test_the_reference_path_uses_the_same_indices(dataset):
    from dalinorm.integration.reference import reference_loader
    from dalinorm.integration.samplers import RepeatedAugmentationSampler

    loader = reference_loader(ra_config(dataset.root), "train", num_workers=0)
    for epoch in range(2):
        labels = [label for _, y in loader for label in y.tolist()]
        assert labels == rasampler_reference(N, 3, 1, 0, 7, epoch)[:240]  # drop_last: 12 × 20
    sampler = RepeatedAugmentationSampler(N, repetitions=4, world_size=3, rank=2, seed=5)
    sampler.set_epoch(6)  # as torchvision's references call it
    assert list(sampler) == rasampler_reference(N, 4, 3, 2, 5, 6) and len(sampler) == 85


def test_the_bench_baselines_use_the_same_indices(dataset):
    """``dalinorm bench``'s classic DataLoaders read the epoch as torchvision's references do
    with ``--ra-sampler`` (RASampler's order and length), so the recipe's baseline does the
    recipe's work; DALI's stock graph, which reads each image once, is left out."""
    from dalinorm.commands.bench import plain_dataloader

    for v2 in (False, True):
        loader = plain_dataloader(ra_config(dataset.root), "train", workers=0, v2=v2)
        for epoch in range(2):
            labels = [label for _, y in loader for label in y.tolist()]
            assert labels == rasampler_reference(N, 3, 1, 0, 7, epoch)[:240]  # drop_last: 12 × 20


def test_too_few_images_or_no_repeat_is_an_error(dataset, colour_data):
    train, _ = colour_data  # 37 images
    with pytest.raises(ConfigError, match=r"loader.repeated_augment: 3 repeats: torchvision's "
                                          r"RASampler .* 0 for 37 images on 1 rank"):
        DaliLoader(ra_config(train.root), "train")
    with pytest.raises(ConfigError, match="loader.repeated_augment: must be >= 1"):
        make_config(train.root, "loader.repeated_augment=0")


def test_a_pack_is_refused(colour_data, tmp_path):
    from dalinorm.commands.pack import pack_split

    train, _ = colour_data
    pack_split(make_config(train.root), split="train", out=tmp_path / "train", shard_size=20_000)
    cfg = make_config(tmp_path, "data.format=webdataset", "loader.repeated_augment=3")
    with pytest.raises(ConfigError, match="loader.repeated_augment: 3 needs images read in a "
                                          "chosen order .* a webdataset pack is read tar by tar"):
        DaliLoader(cfg, "train")
