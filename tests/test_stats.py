"""The statistics pass against an independent float64 numpy reference over decoded pixels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dalinorm import DaliLoader
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.stats import (
    LeakError,
    MomentsAccumulator,
    StatsFileError,
    compute_stats,
    read_stats_file,
    write_stats_file,
)
from PIL import Image
from testkit import DEVICES, REPO, make_config

# mean and std are formed once from exact integer sums; 1e-9 leaves room only for the
# reference's own float64 summation error, never for an accumulation bug
REL = 1e-9


def write_photo_like(folder: Path, n: int, *, seed: int, sizes, bright: bool = False,
                     gray_every: int = 0) -> None:
    """Noisy JPEGs (smooth gradient + noise), optionally near-constant bright ones."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        if bright:  # mean ≈ 250, std ≈ 0.5: catastrophic cancellation bait for Σx² − (Σx)²/n
            img = 250 + rng.integers(0, 2, size=(h, w, 3))
        else:
            yy, xx = np.mgrid[0:h, 0:w]
            base = (xx * rng.uniform(0, 255 / max(w, 1)) + yy * rng.uniform(0, 255 / max(h, 1)))[..., None]
            img = np.clip(base + rng.normal(rng.uniform(20, 200, 3), 25, size=(h, w, 3)), 0, 255)
        img = Image.fromarray(img.astype(np.uint8))
        if gray_every and i % gray_every == 0:
            img = img.convert("L")
        img.save(folder / f"{i:03d}.jpg", quality=92)


def reference_pixels(split_dir: Path, device: str = "cpu") -> list[np.ndarray]:
    """Each image as decoded ([N, 3] float64): by PIL, which DALI's CPU decoder matches bit
    for bit; on the GPU by a plain DALI ``mixed`` decode (nvJPEG differs from libjpeg by
    design), so the reduction is still checked against numpy over the very same pixels."""
    listing = list_image_folder(split_dir)
    if device == "cpu":
        return [np.asarray(Image.open(f).convert("RGB"), dtype=np.float64).reshape(-1, 3)
                for f in listing.files]
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=1, num_threads=1, device_id=0)
    with pipe:
        jpegs, _ = fn.readers.file(files=[str(f) for f in listing.files])
        pipe.set_outputs(fn.decoders.image(jpegs, device="mixed", output_type=types.RGB))
    pipe.build()
    return [np.asarray(pipe.run()[0].as_cpu()[0], dtype=np.float64).reshape(-1, 3) for _ in listing.files]


def assert_matches_reference(stats, images: list[np.ndarray]) -> None:
    pixels = np.concatenate(images)
    assert stats.num_images == len(images)
    assert stats.num_pixels == len(pixels)
    assert stats.sums["sum"] == [int(v) for v in pixels.sum(axis=0)]
    np.testing.assert_allclose(stats.mean, pixels.mean(axis=0) / 255, rtol=REL, atol=0)
    np.testing.assert_allclose(stats.std, pixels.std(axis=0) / 255, rtol=REL, atol=0)
    assert stats.global_mean == pytest.approx(pixels.mean() / 255, rel=REL)
    assert stats.global_std == pytest.approx(pixels.std() / 255, rel=REL)


@pytest.fixture(scope="module")
def mixed_data(tmp_path_factory) -> Path:
    """23 images (not divisible by batch 5): tiny to 900×600, grayscale among them, 2 classes."""
    root = tmp_path_factory.mktemp("mixed")
    sizes = [(17, 9), (9, 17), (640, 480), (333, 251), (900, 600), (1, 1), (48, 64)]
    write_photo_like(root / "train" / "a", 12, seed=1, sizes=sizes, gray_every=4)
    write_photo_like(root / "train" / "b", 11, seed=2, sizes=sizes[::-1])
    return root


@pytest.mark.parametrize("device, reducer", [("cpu", "histogram"), ("cpu", "sums"), *[
    pytest.param("gpu", "sums", marks=d.marks) for d in DEVICES[1:]]])
def test_pixel_stats_match_float64_reference(mixed_data, device, reducer):
    stats = compute_stats(make_config(mixed_data, f"loader.device={device}", f"stats.reducer={reducer}"))
    assert_matches_reference(stats, reference_pixels(mixed_data / "train", device))
    assert stats.split == "train" and stats.fingerprint.startswith("sha256:")
    if reducer == "histogram":  # min and max come free with the counts
        pixels = np.concatenate(reference_pixels(mixed_data / "train"))
        assert list(stats.min) == pixels.min(0).tolist() and list(stats.max) == pixels.max(0).tolist()


def test_single_image(tmp_path):
    write_photo_like(tmp_path / "train" / "only", 1, seed=3, sizes=[(123, 77)])
    stats = compute_stats(make_config(tmp_path))
    assert_matches_reference(stats, reference_pixels(tmp_path / "train"))


def test_near_constant_bright_images_keep_their_small_std(tmp_path):
    write_photo_like(tmp_path / "train" / "c", 7, seed=4, sizes=[(300, 200), (64, 64)], bright=True)
    images = reference_pixels(tmp_path / "train")
    pixels = np.concatenate(images)
    assert 245 < pixels.mean() < 255 and pixels.std() < 2  # the bait is in place
    for reducer in ("histogram", "sums"):
        stats = compute_stats(make_config(tmp_path, "loader.batch_size=3", f"stats.reducer={reducer}"))
        assert_matches_reference(stats, images)
    # float32 one-pass accumulation would lose it entirely: show what the trap looks like
    x32 = pixels.astype(np.float32)
    naive = np.sqrt(np.maximum((x32 * x32).mean(0, dtype=np.float32) - x32.mean(0, dtype=np.float32) ** 2, 0))
    assert not np.allclose(naive / 255, stats.std, rtol=1e-3)


def test_mean_of_per_image_std_is_not_the_dataset_std(tmp_path):
    """Flat images of different grey levels: each image's std is 0, the dataset's is not."""
    folder = tmp_path / "train" / "flat"
    folder.mkdir(parents=True)
    for i, level in enumerate([30, 90, 150, 210]):
        Image.new("RGB", (64, 48), (level, level, level)).save(folder / f"{i}.jpg", quality=95)
    images = reference_pixels(tmp_path / "train")
    stats = compute_stats(make_config(tmp_path))
    naive = np.mean([img.std(axis=0) for img in images], axis=0) / 255  # the common recipe
    assert np.all(naive < 0.01)
    assert np.all(np.asarray(stats.std) > 0.25)
    assert_matches_reference(stats, images)


def test_image_weighting_matches_reference(mixed_data):
    stats = compute_stats(make_config(mixed_data, "stats.weighting=image"))
    images = reference_pixels(mixed_data / "train")
    # every image weighs 1/num_images, spread over its pixels
    weights = np.concatenate([np.full(len(img), 1.0 / len(img)) for img in images]) / len(images)
    pixels = np.concatenate(images)
    mean = (weights[:, None] * pixels).sum(0)
    var = (weights[:, None] * (pixels - mean) ** 2).sum(0)
    g_mean = (weights * pixels.mean(1)).sum()
    g_var = (weights[:, None] * (pixels - g_mean) ** 2).sum() / 3
    # float64 per-image moments merged with Chan's formula: not integer-exact, still ~1e-12
    np.testing.assert_allclose(stats.mean, mean / 255, rtol=1e-9)
    np.testing.assert_allclose(stats.std, np.sqrt(var) / 255, rtol=1e-9)
    assert stats.global_mean == pytest.approx(g_mean / 255, rel=1e-9)
    assert stats.global_std == pytest.approx(np.sqrt(g_var) / 255, rel=1e-9)
    pixel = compute_stats(make_config(mixed_data))
    assert not np.allclose(stats.mean, pixel.mean, rtol=1e-3)  # the two weightings differ here


def test_host_histograms_agree_with_in_graph_sums(mixed_data):
    """The sums reducer with histogram=True copies images to the host for the counts."""
    stats = compute_stats(make_config(mixed_data, "stats.reducer=sums"), histogram=True)
    pixels = np.concatenate(reference_pixels(mixed_data / "train")).astype(np.int64)
    hist = np.asarray(stats.histogram)
    for c in range(3):
        np.testing.assert_array_equal(hist[c], np.bincount(pixels[:, c], minlength=256))
        assert int((hist[c] * np.arange(256)).sum()) == stats.sums["sum"][c]
        assert int((hist[c] * np.arange(256) ** 2).sum()) == stats.sums["sum_squares"][c]
    assert list(stats.min) == pixels.min(0).tolist() and list(stats.max) == pixels.max(0).tolist()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reducer", ["auto", "sums"])
def test_eval_resolution_reduces_what_the_network_sees(mixed_data, device, reducer):
    cfg = make_config(mixed_data, f"loader.device={device}", "stats.resolution=eval", f"stats.reducer={reducer}",
                      "normalize.source=none", "data.val=train", "data.train=unused")
    stats = compute_stats(cfg, split="val", allow_split=True)  # the images under train/
    # the eval loader's output with no normalization is x/255 of the same uint8 pixels
    loader = DaliLoader(cfg, "val")
    images = [np.rint(x.double().cpu().numpy() * 255).transpose(0, 2, 3, 1).reshape(len(x), -1, 3)
              for x, _ in loader]
    per_image = [img for batch in images for img in batch]
    assert stats.num_pixels == len(per_image) * 32 * 32
    assert_matches_reference(stats, per_image)


def test_batches_and_shards_merge_exactly(mixed_data):
    whole = compute_stats(make_config(mixed_data, "loader.batch_size=23"))
    for bs in (1, 4, 7):
        assert compute_stats(make_config(mixed_data, f"loader.batch_size={bs}")).sums == whole.sums
    # three shards reduced separately and merged: the integer sums of the whole
    from dalinorm.stats.compute import reduce_split

    cfg = make_config(mixed_data)
    listing = list_image_folder(mixed_data / "train")
    total = MomentsAccumulator()
    for rank in range(3):
        total.merge(reduce_split(cfg, listing, rank=rank, world_size=3)[0])
    assert (total.num_pixels, total.sums, total.squares) == (
        whole.sums["pixels"], whole.sums["sum"], whole.sums["sum_squares"])
    # a reducer run twice (as bench does) reads the same files again, not a shifted window
    from dalinorm.stats.compute import RankBlockReducer

    reducer = RankBlockReducer(make_config(mixed_data, "loader.batch_size=4"), listing, rank=1, world_size=3)
    first, second = reducer.reduce(), reducer.reduce()
    assert (first.sums, first.squares, first.num_images) == (second.sums, second.squares, second.num_images)


def _distributed_worker(rank: int, world: int, root: str, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        stats = compute_stats(make_config(Path(root), "loader.batch_size=8"))
        if rank == 0:
            write_stats_file(Path(out), stats)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # a subprocess or a training run
def test_three_ranks_write_the_single_process_file(tmp_path):
    """3 real processes (gloo) over 101 images, batch 8: rank 0 writes the single-process sums."""
    import socket

    import torch.multiprocessing as mp

    write_photo_like(tmp_path / "train" / "a", 51, seed=5, sizes=[(40, 30), (31, 47), (64, 64)])
    write_photo_like(tmp_path / "train" / "b", 50, seed=6, sizes=[(50, 20), (17, 9)], gray_every=5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.yaml"
    mp.start_processes(_distributed_worker, args=(3, str(tmp_path), port, str(out)), nprocs=3,
                       join=True, start_method="spawn")
    distributed = read_stats_file(out)
    single = compute_stats(make_config(tmp_path, "loader.batch_size=8"))
    assert distributed.num_images == single.num_images == 101
    assert distributed.sums == single.sums
    assert (distributed.mean, distributed.std, distributed.global_std) == (single.mean, single.std,
                                                                           single.global_std)


def test_stats_file_round_trips_bit_identical(mixed_data, tmp_path):
    stats = compute_stats(make_config(mixed_data), histogram=True)
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    again = read_stats_file(path)
    assert again == stats  # floats included, to the last bit
    text = path.read_text()
    assert "mean_255:" in text and "dali_version:" in text and "created:" in text
    assert (tmp_path / "s.yaml.files.txt").read_text() == stats.file_list


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t[: len(t) // 2] + "\n  - [unclosed", "not valid YAML"),
        (lambda t: t.replace("version: 1", "version: 99"), "format version 99 is not supported"),
        (lambda t: t.replace("format: dalinorm-stats", "format: other"), "not a dalinorm stats file"),
        (lambda t: t.replace("std: [", "std: [0.5, "), "'std' must be a list of 3 values"),
        (lambda t: t.replace("num_images:", "num_imagez:"), "key 'num_images' is missing"),
    ],
)
def test_bad_stats_files_are_named(mixed_data, tmp_path, edit, message):
    stats = compute_stats(make_config(mixed_data))
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    path.write_text(edit(path.read_text()))
    with pytest.raises(StatsFileError) as info:
        read_stats_file(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_loader_applies_stats_channel_and_global(mixed_data, tmp_path):
    stats = compute_stats(make_config(mixed_data))
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    for mode, mean, std in (("channel", stats.mean, stats.std),
                            ("global", (stats.global_mean,) * 3, (stats.global_std,) * 3)):
        cfg = make_config(mixed_data, "normalize.source=stats", f"normalize.stats_file={path}",
                          f"normalize.mode={mode}")
        loader = DaliLoader(cfg, "train")
        assert loader.normalization.mean == tuple(mean) and loader.normalization.std == tuple(std)


def test_leak_guard_refuses_other_splits(mixed_data):
    cfg = make_config(mixed_data, "data.train=unused", "data.val=train")
    with pytest.raises(LeakError, match="--split val: normalization statistics must come from the training"):
        compute_stats(cfg, split="val")
    assert compute_stats(cfg, split="val", allow_split=True).num_images == 23
    proc = subprocess.run([sys.executable, "-m", "dalinorm", "stats", str(REPO / "configs" / "sample.yaml"),
                           "--split", "val", "--out", os.devnull], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --split val: normalization statistics")


def test_fingerprint_mismatch_says_what_changed(tmp_path, caplog):
    write_photo_like(tmp_path / "train" / "a", 4, seed=7, sizes=[(32, 32)])
    path = tmp_path / "s.yaml"
    write_stats_file(path, compute_stats(make_config(tmp_path)))
    write_photo_like(tmp_path / "train" / "b", 2, seed=8, sizes=[(20, 20)])  # 2 files added
    (tmp_path / "train" / "a" / "000.jpg").unlink()  # 1 removed
    cfg = make_config(tmp_path, "normalize.source=stats", f"normalize.stats_file={path}")
    with pytest.raises(StatsFileError, match=r"2 files added, 1 removed, 0 changed in size"):
        DaliLoader(cfg, "train")
    import logging

    with caplog.at_level(logging.WARNING):
        DaliLoader(make_config(tmp_path, "normalize.source=stats", f"normalize.stats_file={path}",
                               "normalize.on_mismatch=warn"), "train")
    assert "2 files added, 1 removed" in caplog.text


@pytest.mark.slow  # a subprocess or a training run
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_pass_keeps_the_old_file(tmp_path, sig):
    write_photo_like(tmp_path / "train" / "a", 300, seed=9, sizes=[(640, 480)])
    out = tmp_path / "s.yaml"
    out.write_text("previous contents\n")
    cmd = [sys.executable, "-m", "dalinorm", "stats", str(REPO / "configs" / "sample.yaml"),
           "--set", f"data.root={tmp_path}", "--set", "loader.batch_size=1", "--set", "loader.device=cpu",
           "--set", "loader.num_threads=1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    line = ""
    while "img" not in line and time.time() < deadline:  # the progress bar: the pass has begun
        line = proc.stderr.readline()
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml", "train"]  # no temp file left


def test_sample_data_naive_recipe_underestimates_std():
    """The numbers quoted in README.md: on the shipped sample data the mean of per-image stds
    is 14–17% below the pooled std, which dalinorm matches to the reference."""
    from dalinorm import load_config

    cfg = load_config(REPO / "configs" / "sample.yaml", overrides=["loader.device=cpu"])
    stats = compute_stats(cfg)
    images = reference_pixels(cfg.split_dir("train"))
    assert_matches_reference(stats, images)
    naive = np.mean([img.std(axis=0) for img in images], axis=0) / 255
    np.testing.assert_allclose(stats.std, [0.3071, 0.2497, 0.2475], atol=5e-5)
    np.testing.assert_allclose(naive, [0.2538, 0.2180, 0.2108], atol=5e-5)
    assert np.all((np.asarray(stats.std) - naive) / np.asarray(stats.std) > 0.12)


def test_histogram_reducer_is_cpu_only():
    from dalinorm.pipelines.reductions import choose_reducer

    assert choose_reducer("auto", on_gpu=True) == "sums"
    assert choose_reducer("auto", on_gpu=False) == "histogram"  # numba is a dependency
    with pytest.raises(ValueError, match="stats.reducer: 'histogram' runs on the CPU only"):
        choose_reducer("histogram", on_gpu=True)
