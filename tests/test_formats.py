"""Every data.format (imagefolder, file_list, webdataset packs) gives the same tensors and the
same statistics for the same images; the packer, its manifest and shard-granularity sharding."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from dalinorm import ConfigError, DaliLoader, DatasetError
from dalinorm.commands.pack import pack_split, parse_size
from dalinorm.data import pack_writer
from dalinorm.data.packs import read_pack
from dalinorm.data.splits import list_split
from dalinorm.integration.reference import reference_loader
from dalinorm.pipelines.checks import check_split
from dalinorm.stats import compute_stats
from dalinorm.stats.compute import RankBlockReducer
from dalinorm.stats.file import StatsFileError, write_stats_file
from testkit import DEVICES, make_config, write_colour_folder


def write_lists(root, data) -> None:
    """train.txt / val.txt in DALI's file-list format, paths relative to root."""
    for split in ("train", "val"):
        files = sorted((root / split).glob("*/*.jpg"))
        classes = sorted({f.parent.name for f in files})
        lines = [f"{f.relative_to(root).as_posix()} {classes.index(f.parent.name)}" for f in files]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_file_list_matches_imagefolder(colour_data):
    train, val = colour_data
    write_lists(train.root, train)
    folder = make_config(train.root)
    listed = make_config(train.root, "data.format=file_list", "data.train=train.txt", "data.val=val.txt")
    for split in ("train", "val"):
        a = [(x.clone(), y.clone()) for x, y in DaliLoader(folder, split)]
        b = [(x.clone(), y.clone()) for x, y in DaliLoader(listed, split)]
        assert len(a) == len(b)
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(ya, yb) and torch.equal(xa, xb)
    assert compute_stats(folder).sums == compute_stats(listed).sums
    ref = torch.cat([x for x, _ in reference_loader(listed, "val", num_workers=0)])
    dali = torch.cat([x for x, _ in DaliLoader(listed, "val")])
    np.testing.assert_allclose(dali.numpy(), ref.numpy(), atol=1e-5)  # flat colours: no resampling error


@pytest.mark.parametrize("text, message", [
    ("a.jpg\n", "train.txt:1: expected 'relative/path label'"),
    ("a.jpg x\n", "train.txt:1: expected 'relative/path label'"),
    ("/abs/a.jpg 0\n", "train.txt:1: path must be relative to data.root"),
    ("\n\n", "lists no files"),
])
def test_bad_file_lists_are_named(tmp_path, text, message):
    (tmp_path / "train.txt").write_text(text)
    with pytest.raises(DatasetError, match=message):
        DaliLoader(make_config(tmp_path, "data.format=file_list", "data.train=train.txt"), "train")


# --------------------------------------------------------------------------- webdataset packs


def _pack_both(train, out: Path, parts: int = 6) -> Path:
    """Pack colour_data's train (shuffled) and val (listed) splits, train in about ``parts``
    tar shards; returns the new data.root."""
    cfg = make_config(train.root)
    total = sum(f.stat().st_size + 1536 for f in train.files)
    pack_split(cfg, split="train", out=out / "train", shard_size=total // parts)
    pack_split(cfg, split="val", out=out / "val", shard_size=total // 3)
    return out


@pytest.fixture(scope="module")
def packed(colour_data, tmp_path_factory) -> Path:
    return _pack_both(colour_data[0], tmp_path_factory.mktemp("packs"))


def test_pack_layout_manifest_and_dali_index(colour_data, packed):
    train, _ = colour_data
    manifest = json.loads((packed / "train" / "manifest.json").read_text())
    assert manifest["num_samples"] == len(train.files) and manifest["order"] == "shuffled"
    assert manifest["num_shards"] >= 5 and manifest["classes"] == ["class_0", "class_1", "class_2"]
    listing = read_pack(packed / "train")
    folder = list_split(make_config(train.root), "train")
    # same images, same fingerprint: the pack is the folder as far as the leak guard is concerned
    assert listing.fingerprint() == folder.fingerprint() == manifest["fingerprint"]
    order = [listing.relative_paths()[i] for i in range(len(listing))]
    assert order != folder.relative_paths() and sorted(order) == sorted(folder.relative_paths())
    # every image's bytes and label, read back from its tar at the recorded offset
    by_path = dict(zip(folder.relative_paths(), zip(folder.files, folder.labels)))
    for i, rel in enumerate(listing.relative_paths()):
        path, label = by_path[rel]
        assert listing.read_bytes(i) == path.read_bytes() and listing.labels[i] == label
    # our index files are what DALI's own wds2idx writes (its IndexCreator, from the DALI wheel)
    wds2idx = pytest.importorskip("wds2idx")
    for shard in listing.shards:
        theirs = shard.index.with_suffix(".theirs")
        with wds2idx.IndexCreator(str(shard.path), str(theirs), verbose=False) as creator:
            creator.create_index()
        assert theirs.read_text() == shard.index.read_text()
        theirs.unlink()
    with tarfile.open(listing.shards[0].path) as archive:
        names = archive.getnames()
    assert names[0].endswith(".jpg") and names[1] == names[0][:-4] + ".cls"


@pytest.mark.parametrize("device", DEVICES)
def test_pack_gives_bit_identical_stats_and_eval_tensors(colour_data, packed, device):
    train, _ = colour_data
    folder = make_config(train.root, f"loader.device={device}")
    pack = make_config(packed, "data.format=webdataset", f"loader.device={device}")
    a, b = compute_stats(folder), compute_stats(pack)
    assert a.sums == b.sums and a.num_pixels == b.num_pixels and a.fingerprint == b.fingerprint
    assert a.mean == b.mean and a.std == b.std  # to the last bit
    # the eval recipe: the val pack keeps ImageFolder's order, so the batches are identical
    xa = [(x.cpu(), y.cpu()) for x, y in DaliLoader(folder, "val")]
    xb = [(x.cpu(), y.cpu()) for x, y in DaliLoader(pack, "val")]
    assert len(xa) == len(xb)
    for (ia, la), (ib, lb) in zip(xa, xb):
        assert torch.equal(ia, ib) and torch.equal(la, lb)


def test_reference_path_reads_a_pack(colour_data, packed):
    train, _ = colour_data
    ref_folder = list(reference_loader(make_config(train.root), "val", num_workers=0))
    ref_pack = list(reference_loader(make_config(packed, "data.format=webdataset"), "val", num_workers=0))
    for (xa, ya), (xb, yb) in zip(ref_folder, ref_pack, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # and the pack's training images through the reference path are the folder's images
    dali = torch.cat([x for x, _ in DaliLoader(make_config(packed, "data.format=webdataset"), "val")])
    np.testing.assert_allclose(dali.numpy(), torch.cat([x for x, _ in ref_pack]).numpy(), atol=1e-5)


def test_train_epochs_over_a_pack_read_every_image_once_reshuffled(colour_data, packed):
    train, _ = colour_data
    cfg = make_config(packed, "data.format=webdataset", "loader.drop_last=false",
                      "data.shuffle_buffer=8")
    loader = DaliLoader(cfg, "train")
    assert len(loader) == -(-len(train.files) // 5)
    epochs = []
    for _ in range(3):
        ids, labels = [], []
        for images, y in loader:
            ids += train.identify(images.numpy(), loader.normalization.mean, loader.normalization.std)
            labels += y.tolist()
        assert sorted(ids) == list(range(len(train.files)))  # every image once, no padding
        assert labels == [train.labels[i] for i in ids]  # .cls labels parsed in the graph
        epochs.append(ids)
    assert epochs[0] != epochs[1] != epochs[2]
    again = DaliLoader(cfg, "train")
    first = [i for images, _ in again
             for i in train.identify(images.numpy(), again.normalization.mean, again.normalization.std)]
    assert first == epochs[0]  # reproducible from loader.seed


def test_ranks_read_whole_tars_with_equal_steps(colour_data, packed):
    train, _ = colour_data
    cfg = make_config(packed, "data.format=webdataset", "loader.batch_size=2")
    listing = read_pack(packed / "train")
    world = 3
    blocks = [listing.tar_block(r, world) for r in range(world)]
    assert blocks[0][0] == 0 and blocks[-1][1] == len(listing)
    assert all(blocks[r][1] == blocks[r + 1][0] for r in range(world - 1))
    shard_starts = {s.start for s in listing.shards} | {len(listing)}
    assert all(a in shard_starts and b in shard_starts for a, b in blocks)  # whole tars
    loaders = [DaliLoader(cfg, "train", rank=r, world_size=world) for r in range(world)]
    counts = [b - a for a, b in blocks]
    assert {len(ld) for ld in loaders} == {min(counts) // 2}  # equal steps, drop_last
    seen = []
    for r, ld in enumerate(loaders):
        ids = [i for images, _ in ld
               for i in train.identify(images.numpy(), ld.normalization.mean, ld.normalization.std)]
        assert len(ids) == len(ld) * 2
        own = {train.files.index(train.root / "train" / listing.relative_paths()[k])
               for k in range(*blocks[r])}
        assert set(ids) <= own  # a rank reads only its own tars
        seen.append(set(ids))
    assert not (seen[0] & seen[1] or seen[1] & seen[2] or seen[0] & seen[2])
    with pytest.raises(DatasetError, match="cannot be split across 99 ranks at shard granularity"):
        DaliLoader(cfg, "train", rank=0, world_size=99)


def test_eval_and_stats_split_a_pack_by_image_exactly_once(colour_data, packed):
    """Eval and stats use DALI's reader sharding over every tar: blocks of 12, 12, 13 images
    with batch 2 pad to 7 batches on every rank (6 real on two of them); each image once."""
    train, _ = colour_data
    cfg = make_config(packed, "data.format=webdataset", "loader.batch_size=2")
    listing = read_pack(packed / "train")
    world = 3
    seen = []
    for r in range(world):
        loader = DaliLoader(make_config(packed, "data.format=webdataset", "loader.batch_size=2",
                                        "data.train=unused", "data.val=train"),
                            "val", rank=r, world_size=world)
        for _ in range(2):  # a second epoch starts at the rank's first image again
            ids = [i for images, _ in loader
                   for i in train.identify(images.numpy(), loader.normalization.mean,
                                           loader.normalization.std)]
            assert len(ids) == loader.epoch_size == len(range(*listing.rank_block(r, world)))
        seen += ids
    assert sorted(seen) == list(range(len(train.files)))
    whole = RankBlockReducer(cfg, listing).reduce()
    parts = []
    for r in range(world):
        reducer = RankBlockReducer(cfg, listing, rank=r, world_size=world)
        first, again = reducer.reduce(), reducer.reduce()  # a second pass stays aligned (bench)
        assert (first.sums, first.squares) == (again.sums, again.squares)
        parts.append(first)
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    assert (merged.num_images, merged.num_pixels, merged.sums, merged.squares) == \
        (whole.num_images, whole.num_pixels, whole.sums, whole.squares) == \
        (len(listing), whole.num_pixels, whole.sums, whole.squares)
    # 4 val tars... or fewer: eval still serves more ranks than tars
    assert len(read_pack(packed / "val").shards) < 8
    assert len(DaliLoader(make_config(packed, "data.format=webdataset"), "val", rank=7, world_size=8)) >= 1


def test_stats_file_of_the_folder_guards_the_pack(colour_data, packed, tmp_path):
    train, _ = colour_data
    path = tmp_path / "stats.yaml"
    write_stats_file(path, compute_stats(make_config(train.root)))
    pack = make_config(packed, "data.format=webdataset", "normalize.source=stats",
                       f"normalize.stats_file={path}")
    DaliLoader(pack, "train")  # same images: accepted
    smaller = write_colour_folder(tmp_path / "small", n=12)
    pack_split(make_config(smaller.root), split="train", out=tmp_path / "p" / "train")
    other = make_config(tmp_path / "p", "data.format=webdataset", "normalize.source=stats",
                        f"normalize.stats_file={path}")
    with pytest.raises(StatsFileError, match="files added"):
        DaliLoader(other, "train")


def test_pack_is_reproducible_and_resumes_after_an_interruption(colour_data, tmp_path, monkeypatch):
    train, _ = colour_data
    cfg = make_config(train.root)
    size = sum(f.stat().st_size + 1536 for f in train.files) // 5
    fresh = pack_split(cfg, split="train", out=tmp_path / "fresh", shard_size=size)
    real_write = pack_writer._write_tar
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_write(*args)

    monkeypatch.setattr(pack_writer, "_write_tar", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pack_split(cfg, split="train", out=tmp_path / "again", shard_size=size)
    assert not list((tmp_path / "again").glob("*.partial")) and not (tmp_path / "again" / "manifest.json").exists()
    with pytest.raises(DatasetError, match="unfinished pack"):
        read_pack(tmp_path / "again")
    monkeypatch.setattr(pack_writer, "_write_tar", real_write)
    resumed = pack_split(cfg, split="train", out=tmp_path / "again", shard_size=size)
    assert resumed.resumed_shards == 2 and resumed.num_shards == fresh.num_shards
    for name in ["samples.tsv"] + [p.name for p in (tmp_path / "fresh").glob("shard-*")]:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    with pytest.raises(DatasetError, match="already holds a pack"):
        pack_split(cfg, split="train", out=tmp_path / "again", shard_size=size)
    # interrupted in its very first shard: the same command still resumes
    monkeypatch.setattr(pack_writer, "_write_tar", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        pack_split(cfg, split="train", out=tmp_path / "first", num_shards=1)
    monkeypatch.setattr(pack_writer, "_write_tar", real_write)
    assert pack_split(cfg, split="train", out=tmp_path / "first", num_shards=1).num_samples == 37
    with pytest.raises(DatasetError, match="unfinished pack of other data or options"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / ".pack-progress").write_text("plan 0123\n")
        pack_split(cfg, split="train", out=tmp_path / "other", shard_size=size)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "manifest.json").unlink(), "holds no manifest.json"),
    (lambda d: (d / "shard-000001.tar").write_bytes(b"x"), r"shard-000001.tar: 1 bytes, but manifest.json says"),
    (lambda d: (d / "shard-000000.tar").unlink(), "shard-000000.tar: tar shard listed in .* is missing"),
    (lambda d: (d / "samples.tsv").write_text("# key\n"), "samples.tsv: does not match manifest.json"),
    (lambda d: (d / "manifest.json").write_text("{"), "manifest.json: cannot be read as JSON"),
    (lambda d: (d / "manifest.json").write_text('{"format": "dalinorm-webdataset", "version": 1}'),
     "manifest.json: no shards, classes, num_samples, fingerprint, samples_sha256"),
    (lambda d: (d / "shard-000001.idx").write_bytes((d / "shard-000000.idx").read_bytes()),
     r"shard-000001.idx: header 'v1.2 \d+', expected 'v1.2 \d+' \(an index of another tar\?\)"),
])
def test_damaged_packs_are_named(colour_data, tmp_path, damage, message):
    train, _ = colour_data
    size = sum(f.stat().st_size + 1536 for f in train.files) // 4
    pack_split(make_config(train.root), split="train", out=tmp_path / "train", shard_size=size)
    damage(tmp_path / "train")
    with pytest.raises(DatasetError, match=message):
        DaliLoader(make_config(tmp_path, "data.format=webdataset"), "train")


def test_check_data_names_a_bad_image_inside_a_pack(tmp_path):
    data = write_colour_folder(tmp_path / "src", n=9, grayscale_every=0)
    bad = data.files[4]
    whole = bad.read_bytes()
    bad.write_bytes(whole[:len(whole) * 2 // 3])  # a truncated JPEG, packed as any other file
    pack_split(make_config(data.root), split="train", out=tmp_path / "pack" / "train",
               shard_size=2000, shuffle=False)
    cfg = make_config(tmp_path / "pack", "data.format=webdataset", "data.train=unused", "data.val=train")
    report = check_split(cfg, "val")
    original = bad.relative_to(data.root / "train").as_posix()
    assert [(b.path.relative_to(tmp_path / "pack" / "train").as_posix(), b.reason[:9]) for b in report.bad] \
        == [(original, "truncated")]
    assert str(report.bad[0]).startswith(f"{tmp_path / 'pack' / 'train' / 'shard-'}")
    assert f"] ({original}): truncated" in str(report.bad[0])
    # mid-run, the loader names the image by its original path too, with a pack's hint
    with pytest.raises(DatasetError, match=rf"\({original}\): cannot be read or decoded mid-run.*re-pack"):
        for _ in DaliLoader(cfg, "val"):
            pass
    with pytest.raises(ConfigError, match="'skip' cannot drop samples inside tar shards"):
        make_config(tmp_path, "data.format=webdataset", "data.on_bad_file=skip", "data.checked_list=x")


def test_cls_labels_of_any_width_parse_in_the_graph(tmp_path):
    data = write_colour_folder(tmp_path, n=6, grayscale_every=0)
    labels = [0, 9, 10, 99, 12345, 100000]
    (tmp_path / "train.txt").write_text("".join(
        f"{f.relative_to(tmp_path).as_posix()} {label}\n" for f, label in zip(data.files, labels)))
    src = make_config(tmp_path, "data.format=file_list", "data.train=train.txt")
    pack_split(src, split="train", out=tmp_path / "pack" / "val", shuffle=False)
    loader = DaliLoader(make_config(tmp_path / "pack", "data.format=webdataset"), "val")
    assert torch.cat([y for _, y in loader]).tolist() == labels


@pytest.mark.parametrize("text, size", [("1GB", 10**9), ("500MB", 5 * 10**8), ("64MiB", 64 * 2**20),
                                        ("1e6", 10**6), ("4096", 4096), ("1.5 kB", 1500)])
def test_shard_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1 parsec", "-5MB", "0"])
def test_bad_shard_sizes_are_refused(text):
    with pytest.raises(ValueError, match="--shard-size"):
        parse_size(text)


def test_cli_pack_then_train_from_the_pack(colour_data, tmp_path, capsys):
    from dalinorm.cli import main

    train, _ = colour_data
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{root: {train.root}}}\nloader: {{batch_size: 5, device: cpu}}\n")
    assert main(["pack", str(config), "--out", str(tmp_path / "packs" / "train"), "--shard-size", "20kB"]) == 0
    out = capsys.readouterr().out
    assert f"{len(train.files)} images in" in out and "data.format=webdataset" in out
    cfg = make_config(tmp_path / "packs", "data.format=webdataset", "loader.drop_last=false")
    assert sum(len(y) for _, y in DaliLoader(cfg, "train")) == len(train.files)
    with pytest.raises(SystemExit):
        main(["pack", str(config), "--out", str(tmp_path / "x"), "--shard-size", "lots"])
    assert "expected a size like 1GB" in capsys.readouterr().err


def test_num_shards_gives_every_rank_the_same_count(colour_data, tmp_path):
    train, _ = colour_data
    result = pack_split(make_config(train.root), split="train", out=tmp_path / "train", num_shards=6)
    listing = read_pack(tmp_path / "train")
    assert result.num_shards == 6 and {s.count for s in listing.shards} == {6, 7}  # 37 = 5·6 + 7
    counts = [b - a for a, b in (listing.rank_block(r, 3) for r in range(3))]
    assert sum(counts) == 37 and max(counts) - min(counts) <= 1
    with pytest.raises(DatasetError, match="--num-shards: 38 shards for 37 images"):
        pack_split(make_config(train.root), split="train", out=tmp_path / "x", num_shards=38)


def test_odd_file_names_round_trip_through_a_pack(tmp_path):
    data = write_colour_folder(tmp_path / "src", n=4, grayscale_every=0)
    odd = data.files[1].with_name("line\u2028sep\rcr\ttab.jpg")
    data.files[1].rename(odd)
    pack_split(make_config(data.root), split="train", out=tmp_path / "p" / "train")
    listing = read_pack(tmp_path / "p" / "train")
    assert odd.relative_to(data.root / "train").as_posix() in listing.relative_paths()
    assert listing.fingerprint() == list_split(make_config(data.root), "train").fingerprint()


def test_resume_state_of_another_layout_is_refused(colour_data, packed):
    train, _ = colour_data
    folder = DaliLoader(make_config(train.root), "train")
    pack = DaliLoader(make_config(packed, "data.format=webdataset"), "train")
    assert folder.listing.fingerprint() == pack.listing.fingerprint()  # same images...
    with pytest.raises(ValueError, match="loader state: format is 'imagefolder' in the checkpoint"):
        pack.load_state_dict(folder.state_dict())  # ...but another reader position


def _foreign_tars(folder: Path, data, per_tar: int = 4, cls=lambda label: str(label).encode()):
    """Webdataset tars as another tool writes them: keys with folders, jpg members, text .cls."""
    import io

    folder.mkdir(parents=True)
    for t in range(0, len(data.files), per_tar):
        with tarfile.open(folder / f"part-{t // per_tar:03d}.tar", "w") as archive:
            for i in range(t, min(t + per_tar, len(data.files))):
                for ext, payload in (("jpg", data.files[i].read_bytes()), ("cls", cls(data.labels[i]))):
                    info = tarfile.TarInfo(f"c{data.labels[i]}/img{i:03d}.{ext}")
                    info.size = len(payload)
                    archive.addfile(info, io.BytesIO(payload))


def test_existing_webdataset_tars_are_indexed_and_read(colour_data, tmp_path):
    from dalinorm.cli import main
    from dalinorm.data.pack_writer import index_tars

    train, _ = colour_data
    _foreign_tars(tmp_path / "wds" / "val", train)
    assert main(["index", str(tmp_path / "wds" / "val")]) == 0
    listing = read_pack(tmp_path / "wds" / "val")
    assert len(listing.shards) == 10 and len(listing) == len(train.files)
    assert listing.relative_paths()[0] == "part-000.tar/c0/img000.jpg"
    # the tars hold the folder's images in its order: the same eval batches and labels
    folder = torch.cat([x for x, _ in DaliLoader(
        make_config(train.root, "data.val=train", "data.train=unused"), "val")])
    batches = list(DaliLoader(make_config(tmp_path / "wds", "data.format=webdataset"), "val"))
    assert torch.equal(torch.cat([x for x, _ in batches]), folder)
    assert torch.cat([y for _, y in batches]).tolist() == list(train.labels)
    with pytest.raises(DatasetError, match="already holds manifest.json"):
        index_tars(tmp_path / "wds" / "val")


@pytest.mark.parametrize("cls, message", [
    (lambda label: f"{label}\n".encode(), r"holds b'\d\\n'; expected the label as up to 8 ASCII digits"),
    (lambda label: b"", r"holds b''; expected the label"),
])
def test_foreign_labels_the_graph_cannot_parse_are_named(colour_data, tmp_path, cls, message):
    from dalinorm.data.pack_writer import index_tars

    _foreign_tars(tmp_path / "wds", colour_data[0], cls=cls)
    with pytest.raises(DatasetError, match=r"part-000.tar: c0/img000.cls " + message):
        index_tars(tmp_path / "wds")
    assert not (tmp_path / "wds" / "manifest.json").exists()


def test_foreign_tar_with_scattered_sample_members_is_refused(colour_data, tmp_path):
    import io

    from dalinorm.data.pack_writer import index_tars

    data = colour_data[0]
    (tmp_path / "wds").mkdir()
    with tarfile.open(tmp_path / "wds" / "a.tar", "w") as archive:
        for name, payload in (("x.jpg", data.files[0].read_bytes()), ("y.jpg", data.files[1].read_bytes()),
                              ("x.cls", b"0"), ("y.cls", b"1")):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(DatasetError, match="a.tar: the members of a sample are not consecutive"):
        index_tars(tmp_path / "wds")


@pytest.mark.parametrize("split", ["train", "val"])
def test_parity_reads_a_pack_without_its_original_files(tmp_path, split):
    """`dalinorm parity` over a webdataset pack reads the reference images from the tars (the
    listing's sources): the original files are gone, and the result is the folder's own
    (bit-exact on the CPU), image for image, in the pack's order."""
    import shutil

    from dalinorm.cli import main
    from dalinorm.commands.parity import run_eval_parity
    from testkit import write_textured_folder

    source = tmp_path / "source"
    write_textured_folder(source, split=split, n=11, seed=8)
    folder_report = run_eval_parity(make_config(source, "eval.resize_shorter=48", "eval.crop=40"),
                                    split=split)
    pack_split(make_config(source), split=split, out=tmp_path / "pack" / split, shard_size=40_000)
    shutil.rmtree(source)  # a pack travels without the folder it was made from
    config = tmp_path / "pack.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'pack'}, format: webdataset}}\nloader: "
                      "{batch_size: 4, num_threads: 2, device: cpu}\neval: {resize_shorter: 48, crop: 40}\n")
    out = tmp_path / "parity.json"
    assert main(["parity", str(config), "--split", split, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["num_images"] == 11 and data["passed"] and data["shape_mismatches"] == []
    assert max(data["max_abs"]) <= 1e-5  # the CPU's pil path is bit-exact, also from tars
    # images are named by their original paths, relative to data.root, as for the folder
    assert all(d["file"].startswith(f"{split}/class_") for d in data["worst"])
    assert data["compared_pixels"] == folder_report.compared_pixels == 11 * 40 * 40
