"""Arrays as data (``data.format: numpy``): listing, the train and eval graphs for C channels of
uint8/uint16/float32, parity with np.load + torchvision.transforms.v2, and check-data.

Arrays are textured (waves shifted per channel, plus grain), so a crop, a flip, a transpose or
a swapped channel changes the output; sizes are mixed (portrait, landscape, square, smaller
than the eval resize so it upscales).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from dalinorm.commands.parity import array_tolerance_for
from dalinorm.config import ConfigError, config_from_dict
from dalinorm.data.splits import list_split
from dalinorm.errors import DatasetError
from dalinorm.integration.loader import DaliLoader
from dalinorm.integration.reference import reference_loader
from testkit import DEVICES

CHANNELS = 8
SIZES = [(40, 50), (33, 61), (70, 45), (37, 37), (21, 26)]  # (H, W); 21 < resize 30: upscaled
MEAN = [0.3 + 0.05 * c for c in range(CHANNELS)]
STD = [0.15 + 0.01 * c for c in range(CHANNELS)]


def textured_array(h: int, w: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    bands = [(np.sin(x / (2.0 + c) + c) * np.cos(y / (3.0 + c / 2)) + 1) / 2 for c in range(CHANNELS)]
    a = np.stack(bands, -1) * 0.9 + rng.random((h, w, CHANNELS)) * 0.1
    if dtype == "uint8":
        return np.round(a * 255).astype(np.uint8)
    if dtype == "uint16":
        return np.round(a * 65535).astype(np.uint16)
    return (a * 3.0 - 1.0).astype(np.float32)  # float data in its own unit, not [0, 1]


def write_array_tree(root: Path, dtype: str, layout: str = "HWC", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for cls in ("forest", "water"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i, (h, w) in enumerate(SIZES):
                a = textured_array(h, w, dtype, rng)
                np.save(folder / f"tile_{i}.npy", a if layout == "HWC" else a.transpose(2, 0, 1))
        (root / split / "forest" / "notes.txt").write_text("not an array")
    return root


def array_config(root: Path, dtype: str, layout: str = "HWC", **extra):
    raw = {
        "data": {"root": str(root), "format": "numpy", "layout": layout, "channels": CHANNELS,
                 "dtype": dtype},
        "loader": {"batch_size": 4, "num_threads": 1, "device": "cpu", "drop_last": False, "seed": 3},
        "train": {"size": 24},
        "eval": {"resize_shorter": 30, "crop": 28},
        "normalize": {"source": "values", "mean": MEAN, "std": STD},
    }
    for section, values in extra.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def uint16_tree(tmp_path_factory) -> Path:
    return write_array_tree(tmp_path_factory.mktemp("u16"), "uint16")


def test_listing_is_imagefolder_order_of_npy_files(uint16_tree):
    listing = list_split(array_config(uint16_tree, "uint16"), "train")
    assert listing.classes == ("forest", "water")
    assert [f.name for f in listing.files[:2]] == ["tile_0.npy", "tile_1.npy"]  # notes.txt not listed
    assert listing.labels == (0,) * len(SIZES) + (1,) * len(SIZES)
    assert listing.fingerprint().startswith("sha256:")


def test_layout_is_for_arrays_only():
    with pytest.raises(ConfigError, match=r"data.layout: is for .npy arrays only"):
        config_from_dict({"data": {"layout": "CHW"}})
    with pytest.raises(ConfigError, match=r"data.layout: must be one of HWC\|CHW"):
        config_from_dict({"data": {"format": "numpy", "layout": "WHC"}})


def assert_array_parity(dali: torch.Tensor, ref: torch.Tensor, device: str, dtype: str) -> None:
    """|DALI − reference| back on the data's scale ([0, 1], or float32 as stored: the
    normalized difference times each channel's std) within the table's bounds: float rounding
    inside, 1/8 of the value range on the outermost rows and columns (commands/parity.py)."""
    tol = array_tolerance_for(device, dtype)
    diff = (dali.cpu() - ref).abs() * torch.tensor(STD).view(1, -1, 1, 1)
    assert float(diff[..., 1:-1, 1:-1].max()) <= tol.max_abs, tol.why
    value_range = 3.0 if dtype == "float32" else 1.0  # textured_array's float data spans [-1, 2]
    assert float(diff.max()) <= tol.edge_fraction * value_range


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,layout", [("uint8", "CHW"), ("uint16", "HWC"), ("float32", "CHW")])
def test_eval_matches_numpy_and_torchvision(tmp_path, device, dtype, layout):
    root = write_array_tree(tmp_path, dtype, layout)
    cfg = array_config(root, dtype, layout, loader={"device": device})
    dali = DaliLoader(cfg, "val")
    ref = reference_loader(cfg, "val", num_workers=0)
    seen = 0
    for (a, la), (b, lb) in zip(dali, ref):
        a = a.cpu()
        assert a.shape == b.shape == (len(la), CHANNELS, 28, 28)
        assert torch.equal(la.cpu(), lb)
        assert_array_parity(a, b, device, dtype)
        seen += len(la)
    assert seen == 2 * len(SIZES)


@pytest.mark.parametrize("device", DEVICES)
def test_train_shapes_labels_and_flip(uint16_tree, device):
    cfg = array_config(uint16_tree, "uint16", loader={"device": device, "drop_last": True})
    loader = DaliLoader(cfg, "train")
    labels = []
    for images, batch_labels in loader:
        assert images.shape == (4, CHANNELS, 24, 24) and images.dtype == torch.float32
        assert torch.isfinite(images).all()
        labels += batch_labels.tolist()
    assert len(labels) == 8 and set(labels) <= {0, 1}


@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_train_fallback_window_is_torchvision(tmp_path, hflip):
    """scale (1, 1) with ratio (1, 1) fits no window in a non-square array (the area needs a
    side longer than the short one), so torchvision falls back to the centered square of the
    short side: deterministic, so DALI's train output must equal torchvision's."""
    root = write_array_tree(tmp_path, "uint16")
    cfg = array_config(root, "uint16", train={"scale": [1.0, 1.0], "ratio": [1.0, 1.0], "hflip": hflip},
                       loader={"batch_size": 1})
    from dalinorm.integration.reference import LoadArray, reference_array_transform

    listing = list_split(cfg, "train")
    load, transform = LoadArray("HWC", "uint16"), reference_array_transform(cfg, "train")
    refs = [transform(load(f)) for f in listing.files]
    outputs = [images[0] for images, _ in DaliLoader(cfg, "train")]
    assert len(outputs) == len(refs)
    # the train order is shuffled: every DALI output equals one reference output (the
    # nearest), within the parity bounds; the square touches the array's edges
    std = torch.tensor(STD).view(-1, 1, 1)
    for out in outputs:
        nearest = min(refs, key=lambda r: float(((out - r).abs() * std)[:, 1:-1, 1:-1].max()))
        assert_array_parity(out[None], nearest[None], "cpu", "uint16")


def test_crop_window_distribution_is_torchvision():
    """Window areas and aspect ratios drawn in the graph against torchvision's
    RandomResizedCrop.get_params on the same image size, 2,048 draws each: the means of the
    area fraction, of log(aspect) and of "wider than high" agree within 4 standard errors
    (≈0.01, ≈0.02, ≈0.06; an aspect drawn uniformly instead of log-uniformly is 6 off)."""
    from nvidia.dali import fn, pipeline_def, types
    from torchvision.transforms import v2

    from dalinorm.pipelines.arrays import torchvision_crop_window

    scale, ratio, H, W = (0.08, 1.0), (3 / 4, 4 / 3), 90, 120

    @pipeline_def(batch_size=256, num_threads=1, device_id=None, seed=5)
    def windows():
        shape = fn.constant(idata=[H, W, 3], dtype=types.INT32)
        return torchvision_crop_window(shape, scale, ratio)

    pipe = windows()
    pipe.build()
    got = []
    for _ in range(8):
        top, left, h, w = (np.array(o.as_tensor()).reshape(-1) for o in pipe.run())
        assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
        got.append(np.stack([h, w], 1))
    got = np.concatenate(got)
    torch.manual_seed(0)
    image = torch.zeros(3, H, W)
    ref = np.array([v2.RandomResizedCrop.get_params(image, list(scale), list(ratio))[2:]
                    for _ in range(len(got))], dtype=np.float64)
    area = [s[:, 0] * s[:, 1] / (H * W) for s in (got, ref)]
    log_aspect = [np.log(s[:, 1] / s[:, 0]) for s in (got, ref)]
    wider = [(s[:, 1] > s[:, 0]).astype(np.float64) for s in (got, ref)]  # log-uniform: ≈ 1/2
    for a, b in (area, log_aspect, wider):
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)


def test_check_data_names_what_was_found_and_expected(tmp_path):
    root = write_array_tree(tmp_path, "float32")
    bad_dir = root / "train" / "water"
    (bad_dir / "junk.npy").write_bytes(b"\x00\x01 not numpy at all")
    np.save(bad_dir / "ints.npy", np.zeros((8, 8, CHANNELS), np.uint16))
    np.save(bad_dir / "flat.npy", np.zeros((8, 8), np.float32))
    np.save(bad_dir / "rgba.npy", np.zeros((8, 8, 4), np.float32))
    nan = np.zeros((8, 8, CHANNELS), np.float32)
    nan[0, 0, 0], nan[1, 1, 1], nan[2, 2, 2] = np.nan, np.inf, -np.inf
    np.save(bad_dir / "nan.npy", nan)
    np.save(bad_dir / "short.npy", np.zeros((8, 8, CHANNELS), np.float32))
    with open(bad_dir / "short.npy", "r+b") as handle:
        handle.truncate(200)
    from dalinorm.pipelines.checks import check_split

    cfg = array_config(root, "float32")
    reasons = {b.path.name: b.reason for b in check_split(cfg, "train").bad}
    assert set(reasons) == {"junk.npy", "ints.npy", "flat.npy", "rgba.npy", "nan.npy", "short.npy"}
    assert reasons["junk.npy"] == "not a .npy file (no NumPy magic string)"
    assert reasons["ints.npy"] == "dtype <u2 (uint16), expected float32 (data.dtype, little-endian)"
    assert reasons["flat.npy"] == "2-D array of shape [8, 8], expected 3-D HWC (data.layout)"
    assert reasons["rgba.npy"] == "4 channels (shape [8, 8, 4] as HWC), expected 8 (data.channels)"
    assert reasons["nan.npy"].startswith("float32 array holds 1 NaN and 2 infinite values")
    assert reasons["short.npy"].startswith("truncated: 200 bytes, the header promises")
    # CHW declared: the channel axis is the first one
    chw = array_config(root, "float32", "CHW")
    assert {b.reason for b in check_split(chw, "val").bad} == {
        f"{h} channels (shape [{h}, {w}, 8] as CHW), expected 8 (data.channels)"
        for h, w in SIZES}


def test_bad_array_is_skipped_with_on_bad_file_skip(tmp_path):
    root = write_array_tree(tmp_path, "uint16")
    np.save(root / "train" / "water" / "eight_bit.npy", np.zeros((9, 9, CHANNELS), np.uint8))
    with pytest.raises(DatasetError, match=r"eight_bit.npy: dtype \|u1 \(uint8\), expected uint16"):
        DaliLoader(array_config(root, "uint16"), "train")  # data.on_bad_file: error (default)
    cfg = array_config(root, "uint16", data={"on_bad_file": "skip"}, loader={"drop_last": True})
    loader = DaliLoader(cfg, "train")
    assert loader.skipped_files == 1 and len(loader.listing) == 2 * len(SIZES)
    with pytest.raises(DatasetError):
        list_split(array_config(tmp_path / "nowhere", "uint16"), "train")


def _train_pixels(root: Path, dtype: str) -> list[np.ndarray]:
    """Every training array as [pixels, C], read with np.load (independently of DALI)."""
    files = sorted((root / "train").glob("*/*.npy"))
    return [np.load(f).reshape(-1, CHANNELS) for f in files]


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_uint16_statistics_are_exact(tmp_path, layout):
    from dalinorm.stats.compute import compute_stats

    root = write_array_tree(tmp_path, "uint16", layout)
    cfg = array_config(root, "uint16", layout, loader={"batch_size": 3})
    stats = compute_stats(cfg)
    files = sorted((root / "train").glob("*/*.npy"))
    arrays = [np.load(f) for f in files]
    pixels = np.concatenate([(a.transpose(1, 2, 0) if layout == "CHW" else a).reshape(-1, CHANNELS)
                             for a in arrays]).astype(np.int64)
    assert stats.num_images == len(files) and stats.num_pixels == len(pixels)
    # integer sums: exact, compared as Python ints
    assert stats.sums["sum"] == [int(v) for v in pixels.sum(0)]
    assert stats.sums["sum_squares"] == [int(v) for v in (pixels * pixels).sum(0)]
    x = pixels.astype(np.float64) / 65535
    # mean/std each rounded once from exact integers; float64 numpy on x/65535 rounds a few
    # times along the way: 1e-12 relative is far above both and far below any real error
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.std, x.std(0), rtol=1e-12)
    assert list(stats.min) == pixels.min(0).tolist() and list(stats.max) == pixels.max(0).tolist()
    for key, percent in (("p0.5", 0.5), ("p50", 50), ("p99.5", 99.5)):
        expected = np.percentile(pixels, percent, axis=0, method="inverted_cdf")
        assert list(stats.percentiles[key]) == expected.astype(int).tolist()
    # 8 × 65,536 histogram bins: packed rows in the stats file, read back exactly and fast
    from dalinorm.stats.file import read_stats_file, write_stats_file

    write_stats_file(tmp_path / "stats.yaml", stats)
    assert (tmp_path / "stats.yaml").stat().st_size < 200_000  # 1.6 MB as YAML lists
    back = read_stats_file(tmp_path / "stats.yaml")
    assert back.histogram == stats.histogram and len(back.histogram[0]) == 65536
    assert back.percentiles == stats.percentiles


def test_float32_statistics_within_the_stated_bound(tmp_path):
    from dalinorm.stats.compute import compute_stats
    from dalinorm.stats.file import read_stats_file, write_stats_file

    root = write_array_tree(tmp_path, "float32")
    cfg = array_config(root, "float32", loader={"batch_size": 3})
    stats = compute_stats(cfg)
    pixels = np.concatenate(_train_pixels(root, "float32")).astype(np.float64)
    # the reference: correctly rounded sums (math.fsum is exact before its one rounding)
    exact_sum = np.array([math.fsum(pixels[:, c]) for c in range(CHANNELS)])
    exact_sq = np.array([math.fsum(pixels[:, c] ** 2) for c in range(CHANNELS)])
    bound = stats.sums["error_bound"]
    assert (np.abs(np.array(stats.sums["sum"]) - exact_sum) <= bound["sum"]).all()
    assert (np.abs(np.array(stats.sums["sum_squares"]) - exact_sq) <= bound["sum_squares"]).all()
    # the bound is a useful one: under 1e-12 of the sums of magnitudes at this size
    assert (np.array(bound["sum"]) < 1e-12 * np.abs(pixels).sum(0)).all()
    n = len(pixels)
    mean, var = exact_sum / n, exact_sq / n - (exact_sum / n) ** 2
    assert (np.abs(np.array(stats.mean) - mean) <= bound["mean"]).all()
    assert (np.abs(np.array(stats.std) ** 2 - var) <= np.array(bound["variance"]) + 1e-15).all()
    np.testing.assert_allclose(stats.std, pixels.std(0), rtol=1e-12)
    assert list(stats.min) == pixels.min(0).tolist() and stats.percentiles is None
    from dalinorm.commands.stats import format_stats_table

    table = format_stats_table(stats)
    assert "values as stored" in table and "error bound of the means <=" in table
    assert f"{pixels[:, 0].min():.6g}" in table.splitlines()[3]  # c0's min, as stored
    path = tmp_path / "stats.yaml"
    write_stats_file(path, stats)
    back = read_stats_file(path)
    assert back.sums["error_bound"] == bound and "Neumaier" in back.sums["summation"]
    assert back.mean == stats.mean


def test_float32_percentiles_are_refused_with_a_reason(tmp_path):
    from dalinorm.errors import UsageError
    from dalinorm.stats.compute import compute_stats

    root = write_array_tree(tmp_path, "float32")
    with pytest.raises(UsageError, match="no finite set of levels"):
        compute_stats(array_config(root, "float32"), histogram=True)
    with pytest.raises(ConfigError, match=r"normalize.mode: 'percentile' needs exact percentiles"):
        array_config(root, "float32", normalize={"source": "stats", "stats_file": "s.yaml",
                                                 "mode": "percentile", "mean": None, "std": None})


def test_neumaier_sum_recovers_what_naive_summation_loses():
    from dalinorm.stats.arrays import NeumaierSum

    acc = NeumaierSum.zeros(1)
    naive = 0.0
    for v in [1e16, 1.0, -1e16, 1.0] * 1000:
        acc.add(np.array([v]))
        naive += v
    assert acc.value()[0] == 2000.0 and naive != 2000.0


def test_resume_and_sharding_work_for_arrays(uint16_tree):
    cfg = array_config(uint16_tree, "uint16", loader={"batch_size": 2, "drop_last": True})
    first = DaliLoader(cfg, "train")
    batches = iter(first)
    next(batches)
    state = first.state_dict()
    expected = [(x.clone(), y.clone()) for x, y in batches]
    resumed = DaliLoader(cfg, "train")
    resumed.load_state_dict(state)
    got = list(resumed)
    assert len(got) == len(expected) == 4
    for (a, la), (b, lb) in zip(got, expected):
        assert torch.equal(la, lb) and torch.equal(a, b)
    # eval shards: contiguous blocks of the listing order, together every array once
    whole = torch.cat([x for x, _ in DaliLoader(cfg, "val")])
    parts = [torch.cat([x for x, _ in DaliLoader(cfg, "val", rank=r, world_size=3)]) for r in range(3)]
    assert torch.equal(torch.cat(parts), whole)


# ---------------------------------------------------------------------------- multi-band TIFF

tifffile = pytest.importorskip("tifffile")


def write_tiff_tree(root: Path, dtype: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for cls in ("forest", "water"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i, (h, w) in enumerate(SIZES):
                # interleaved samples (what DALI decodes), deflate-compressed every other file
                tifffile.imwrite(folder / f"tile_{i}.tif", textured_array(h, w, dtype, rng),
                                 photometric="minisblack", planarconfig="contig",
                                 compression="zlib" if i % 2 else None)
    return root


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_multiband_tiff_eval_and_statistics(tmp_path, dtype):
    from dalinorm.stats.compute import compute_stats

    root = write_tiff_tree(tmp_path, dtype)
    cfg = array_config(root, dtype, data={"format": "tiff"})
    for (a, la), (b, lb) in zip(DaliLoader(cfg, "val"), reference_loader(cfg, "val", num_workers=0)):
        assert a.shape == (len(la), CHANNELS, 28, 28) and torch.equal(la, lb)
        assert_array_parity(a, b, "cpu", dtype)
    stats = compute_stats(cfg)
    pixels = np.concatenate([tifffile.imread(f).reshape(-1, CHANNELS)
                             for f in sorted((root / "train").glob("*/*.tif"))]).astype(np.float64)
    scale = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}[dtype]
    np.testing.assert_allclose(stats.mean, pixels.mean(0) / scale, rtol=1e-12)
    np.testing.assert_allclose(stats.std, pixels.std(0) / scale, rtol=1e-12)


def test_tiffs_dali_cannot_decode_are_named(tmp_path):
    from dalinorm.pipelines.checks import check_split

    root = write_tiff_tree(tmp_path, "uint16")
    bad = root / "train" / "water"
    planes = np.zeros((CHANNELS, 9, 9), np.uint16)
    tifffile.imwrite(bad / "planar.tif", planes, photometric="minisblack", planarconfig="separate")
    tifffile.imwrite(bad / "eight_bit.tif", np.zeros((9, 9, CHANNELS), np.uint8),
                     photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(bad / "rgba.tif", np.zeros((9, 9, 4), np.uint16), photometric="rgb",
                     planarconfig="contig", extrasamples=["unassalpha"])
    tifffile.imwrite(bad / "stack.tif", np.zeros((2, 9, 9, CHANNELS), np.uint16),
                     photometric="minisblack", planarconfig="contig")
    (bad / "junk.tif").write_bytes(b"II*\x00 but nothing else")
    cfg = array_config(root, "uint16", data={"format": "tiff"})
    reasons = {b.path.name: b.reason for b in check_split(cfg, "train").bad}
    assert set(reasons) == {"planar.tif", "eight_bit.tif", "rgba.tif", "stack.tif", "junk.tif"}
    assert reasons["planar.tif"].startswith("planar TIFF (8 samples stored plane by plane)")
    assert reasons["eight_bit.tif"].startswith("uint8 samples, expected uint16 (data.dtype)")
    assert reasons["rgba.tif"] == "4 samples per pixel, expected 8 (data.channels)"
    assert reasons["stack.tif"].startswith("2-page TIFF")
    assert reasons["junk.tif"].startswith("not a readable TIFF")
    # before any pipeline runs, the loader names the first such file (headers only)
    with pytest.raises(DatasetError, match=r"eight_bit.tif: uint8 samples, expected uint16"):
        DaliLoader(cfg, "train")


def test_demo_runs_on_the_shipped_8_band_sample():
    from dalinorm.commands.demo import demo_lines
    from dalinorm.config import load_config
    from testkit import REPO

    sample = REPO / "sample_data" / "multiband"
    files = sorted(sample.glob("*/*/*.npy"))
    assert len(files) == 21 and sum(f.stat().st_size for f in files) <= 700_000
    assert (sample / "LICENSES.md").read_text().count("- Licence:") == 3
    path = REPO / "configs" / "sample_multiband.yaml"
    lines = list(demo_lines(load_config(path), str(path)))
    text = "\n".join(lines)
    assert "8 channels, uint16" in text and "batch shape [4, 8, 32, 32] float32" in text
    assert "batch shape [2, 8, 32, 32]" in text  # val: 6 arrays, the last batch of 2


@pytest.mark.slow  # ≈10 s: four loaders built, one epoch each
def test_bench_on_arrays_times_dalinorm_the_reference_and_the_floor(uint16_tree):
    from dalinorm.commands.bench import run_bench

    cfg = array_config(uint16_tree, "uint16", loader={"drop_last": True})
    report = run_bench(cfg, epochs=1, warmup=0, workers=0)  # asks for every candidate
    res = report["results"]
    assert set(res) == {"dalinorm", "reference", "decode floor", "stats pass"}
    assert res["dalinorm"]["images_per_epoch"] == res["reference"]["images_per_epoch"] == 8
    assert res["decode floor"]["images_per_epoch"] == res["stats pass"]["images_per_epoch"] == 10


def test_per_image_and_output_formats_on_arrays(uint16_tree):
    # per_image: every yielded array has mean 0 and std 1 over all its values (1e-5: float32
    # reductions over 28·28·8 values), and equals the reference path's
    cfg = array_config(uint16_tree, "uint16", normalize={"source": "none", "mode": "per_image",
                                                         "mean": None, "std": None})
    for (a, _), (b, _) in zip(DaliLoader(cfg, "val"), reference_loader(cfg, "val", num_workers=0)):
        flat = a.reshape(len(a), -1).double()
        assert torch.allclose(flat.mean(1), torch.zeros(len(a), dtype=torch.float64), atol=1e-5)
        assert torch.allclose(flat.std(1, correction=0), torch.ones(len(a), dtype=torch.float64), atol=1e-5)
        # the same images divided by their own std (≈0.2 of the range): 2e-6 / 0.2 inside
        assert float((a - b).abs()[..., 1:-1, 1:-1].max()) <= 1e-5
    # float16 in channels_last memory: the same numbers to float16's half ulp at |x| < 4
    half = array_config(uint16_tree, "uint16", output={"dtype": "float16", "layout": "NHWC"})
    full = array_config(uint16_tree, "uint16")
    for (h, _), (f, _) in zip(DaliLoader(half, "val"), DaliLoader(full, "val")):
        assert h.dtype == torch.float16 and h.shape == f.shape
        assert h.is_contiguous(memory_format=torch.channels_last)
        assert float((h.float() - f).abs().max()) <= 2e-3


def test_dalinorm_parity_on_arrays(tmp_path):
    from dalinorm.commands.parity import run_eval_parity

    root = write_array_tree(tmp_path, "float32", "CHW")
    report = run_eval_parity(array_config(root, "float32", "CHW"))
    assert report.passed and report.num_images == 2 * len(SIZES) and len(report.max_levels) == CHANNELS
    # float32: levels are stored units; the bound scales with the arrays' range (≈3 here)
    assert report.tolerance.why.startswith("arrays:") and 0.3 < report.tolerance.max_levels < 0.5
    # the report compares whole outputs, edges included (a window's outermost pixels whose
    # filter reaches the array's edge): measured max 6.9e-4, mean 7.7e-5 stored units here
    assert max(report.max_levels) < 2e-3 and max(report.mean_levels) < 2e-4
