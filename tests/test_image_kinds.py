"""Grayscale and 16-bit images (data.channels, data.dtype) through every graph.

References, independent of DALI: pixels read with PIL (8-bit, ``convert("L")`` for gray, the
``I;16`` modes for 16-bit TIFF) or torchvision's libpng decoder (16-bit PNG, grayscale and
RGB), statistics in float64 numpy and exact integers, percentiles ``numpy.percentile(...,
method="inverted_cdf")``. Images are textured (testkit.natural_image) and of mixed sizes; the
16-bit ones carry 16 bits of information per sample (8-bit texture × 257 plus uniform noise
over the low byte), so an 8-bit path or a wrong scale shows.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dalinorm.commands.parity import run_eval_parity, tolerance_for
from dalinorm.commands.stats import format_stats_table
from dalinorm.errors import DalinormError
from dalinorm.stats import StatsFileError, compute_stats, read_stats_file, write_stats_file
from dalinorm.stats.file import percentile_key
from dalinorm.stats.moments import PERCENTILES

from testkit import DEVICES, make_config, natural_image

SIZES = ((97, 61), (61, 97), (45, 80), (80, 45), (50, 50), (23, 31))
KINDS = {  # kind: (data.channels, data.dtype)
    "gray8": (1, "uint8"),
    "gray16": (1, "uint16"),
    "rgb16": (3, "uint16"),
}


def write_png16(path: Path, array: np.ndarray) -> None:
    """A 16-bit grayscale ([H, W]) or RGB ([H, W, 3]) PNG, written by hand (PIL cannot write
    16-bit RGB): IHDR bit depth 16, big-endian samples, filter 0 per row."""
    a = np.asarray(array, np.uint16)
    a = a[:, :, None] if a.ndim == 2 else a
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _sixteen(img: np.ndarray, rng) -> np.ndarray:
    return (img.astype(np.uint32) * 257 + rng.integers(0, 257, img.shape)).clip(0, 65535).astype(np.uint16)


def write_kind(root: Path, kind: str, n: int = 6, seed: int = 0) -> Path:
    """train/ and val/ ImageFolders of ``kind``: gray8 mixes "L" PNGs with RGB PNGs and a
    JPEG (converted in the graph), gray16 mixes 16-bit PNG and TIFF, rgb16 is 16-bit RGB PNG."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for i in range(n):
            folder = root / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            img = natural_image(*SIZES[i % len(SIZES)], rng)
            if kind == "gray8":
                if i % 3 == 0:
                    Image.fromarray(img).save(folder / f"{i}.png")  # an RGB file: converted
                elif i % 3 == 1:
                    Image.fromarray(img).convert("L").save(folder / f"{i}.png")
                else:
                    Image.fromarray(img).convert("L").save(folder / f"{i}.jpg", quality=90)
            elif kind == "gray16":
                gray = _sixteen(img[..., 0], rng)
                if i % 2:
                    Image.fromarray(gray).save(folder / f"{i}.tif")
                else:
                    write_png16(folder / f"{i}.png", gray)
            else:
                write_png16(folder / f"{i}.png", _sixteen(img, rng))
    return root


def kind_config(root: Path, kind: str, *overrides: str, device: str = "cpu", **sections):
    channels, dtype = KINDS[kind]
    sections.setdefault("normalize", {"source": "values", "mean": [0.4], "std": [0.25]})
    return make_config(root, f"loader.device={device}", *overrides,
                       data={"channels": channels, "dtype": dtype}, **sections)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    return {kind: write_kind(tmp_path_factory.mktemp(kind), kind) for kind in KINDS}


def reference_pixels(root: Path, kind: str, split: str = "train") -> list[np.ndarray]:
    """[H, W, C] int64 pixels of every image of ``split``, read without DALI."""
    from torchvision.io import ImageReadMode, decode_image, read_file

    channels, dtype = KINDS[kind]
    out = []
    for path in sorted((root / split).rglob("*.*")):
        if dtype == "uint8":
            arr = np.asarray(Image.open(path).convert("L" if channels == 1 else "RGB"))
        elif path.suffix == ".tif":
            arr = np.asarray(Image.open(path))
        else:
            arr = decode_image(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
            arr = arr.to(torch.int32).permute(1, 2, 0).numpy()
        out.append(arr.astype(np.int64).reshape(arr.shape[0], arr.shape[1], channels))
    return out


# ---------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("reducer", ["histogram", "sums"])
def test_stats_equal_numpy_over_the_pixels(roots, kind, reducer):
    channels, dtype = KINDS[kind]
    top = 65535 if dtype == "uint16" else 255
    pixels = reference_pixels(roots[kind], kind)
    flat = np.concatenate([p.reshape(-1, channels) for p in pixels])
    stats = compute_stats(kind_config(roots[kind], kind, f"stats.reducer={reducer}"), histogram=True)
    assert (stats.channels, stats.dtype, stats.bit_depth) == (channels, dtype, 8 if top == 255 else 16)
    assert stats.num_pixels == flat.shape[0] and stats.num_images == len(pixels)
    # exact integer sums (Python ints: Σx² of 16-bit pixels passes 2**32 in one image)
    assert stats.sums["sum"] == [int(v) for v in flat.sum(axis=0)]
    assert stats.sums["sum_squares"] == [sum(int(v) * int(v) for v in flat[:, c]) for c in range(channels)]
    x = flat.astype(np.float64) / top
    # mean/std are formed once from the exact sums: float64 numpy agrees to its own rounding
    np.testing.assert_allclose(stats.mean, x.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(stats.std, x.std(axis=0), rtol=1e-9, atol=0)
    np.testing.assert_allclose(stats.global_std, x.std(), rtol=1e-9, atol=0)
    assert list(stats.min) == flat.min(axis=0).tolist() and list(stats.max) == flat.max(axis=0).tolist()
    for p in PERCENTILES:  # integers on both sides: equal, not close
        want = np.percentile(flat, p, axis=0, method="inverted_cdf").astype(np.int64).tolist()
        assert list(stats.percentiles[percentile_key(p)]) == want, p
    assert len(stats.histogram) == channels and len(stats.histogram[0]) == top + 1


def test_stats_file_records_the_sample_type_and_refuses_another(roots, tmp_path):
    cfg = kind_config(roots["gray16"], "gray16")
    stats = compute_stats(cfg, histogram=True)
    path = tmp_path / "gray16.yaml"
    write_stats_file(path, stats)
    again = read_stats_file(path)
    assert again == stats and (again.channels, again.dtype, again.bit_depth) == (1, "uint16", 16)
    assert "mean_65535" in path.read_text()
    table = format_stats_table(again)
    assert "1 channel, uint16 (16-bit; [0, 1] scale is x/65535)" in table
    row = next(line for line in table.splitlines() if line.startswith("L "))
    assert int(row.split()[-1]) == stats.max[0] > 255  # 16-bit levels, not 8-bit
    from dalinorm.stats.plot import plot_histograms

    plot_histograms(again, tmp_path / "h.png")  # one panel, 65,536 bins in 1,024 bars
    assert Image.open(tmp_path / "h.png").size[1] < 400
    # the same file under an 8-bit grayscale config: a named error, not 65535/255-off values
    wrong = kind_config(roots["gray16"], "gray8", normalize={"source": "stats", "stats_file": str(path)})
    from dalinorm.stats.normalization import resolve_normalization

    with pytest.raises(StatsFileError, match=r"1-channel uint16 samples, but the config reads "
                                             r"1-channel uint8"):
        resolve_normalization(wrong)
    # and it normalizes the 16-bit loader with x/65535: the train split comes out standardized
    good = kind_config(roots["gray16"], "gray16", "stats.resolution=eval",
                       normalize={"source": "stats", "stats_file": str(path)})
    assert resolve_normalization(good).mean == stats.mean
    # stats.resolution: eval reduces the 16-bit float resize rounded to integer levels
    evald = compute_stats(good, histogram=True)
    assert evald.num_pixels == 6 * 32 * 32 and len(evald.histogram[0]) == 65536
    assert abs(evald.mean[0] - stats.mean[0]) < 0.05 and evald.max[0] > 255


# ---------------------------------------------------------------------------- graphs
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_parity_with_the_reference_path(roots, kind, device):
    """DALI's eval graph vs torchvision from the same config: 8-bit gray on the CPU exact
    (Pillow's "L" resize is the numba kernel's 8bpc arithmetic; RGB files converted with
    PIL's integer luma), 16-bit within TOLERANCES[(device, "uint16")]."""
    cfg = kind_config(roots[kind], kind, device=device)
    report = run_eval_parity(cfg)
    assert report.num_images == 6 and not report.shape_mismatches
    assert len(report.max_levels) == KINDS[kind][0]
    if kind == "gray8" and device == "cpu":
        assert report.tolerance == tolerance_for("cpu", "pil")
        assert max(report.max_abs) <= 1e-5, report.worst  # float rounding of the normalization
    else:
        assert report.tolerance.why.startswith("16-bit") or kind == "gray8"
    assert report.passed, report.failures()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_train_and_decode_graphs_yield_the_kind(roots, kind, device):
    from dalinorm import DaliLoader

    channels, dtype = KINDS[kind]
    cfg = kind_config(roots[kind], kind, "loader.batch_size=4", device=device)
    images, labels = next(iter(DaliLoader(cfg, "train")))
    assert images.shape == (4, channels, 32, 32) and images.dtype == torch.float32
    # normalized with mean 0.4, std 0.25 on x/255 or x/65535: the textures span the range
    x = images.float().cpu() * 0.25 + 0.4
    assert -1e-5 <= float(x.min()) and float(x.max()) <= 1 + 1e-5 and float(x.std()) > 0.05

    from dalinorm.pipelines.graphs import build_decode_pipeline
    from dalinorm.pipelines.specs import GraphSpec

    files = sorted(str(p) for p in (roots[kind] / "val").rglob("*.*"))[:3]
    spec = GraphSpec(files=files, labels=[0] * 3,
                     device_id=None if device == "cpu" else 0, seed=0)
    pipe = build_decode_pipeline(dataclasses.replace(
        cfg, loader=dataclasses.replace(cfg.loader, batch_size=3)), spec)
    pipe.build()
    (out,) = pipe.run()
    out = out.as_cpu() if hasattr(out, "as_cpu") else out
    want = reference_pixels(roots[kind], kind, "val")[:3]
    for i in range(3):  # the decode floor decodes the stored samples exactly
        got = np.asarray(out[i])
        assert got.dtype == np.dtype(dtype) and np.array_equal(got.astype(np.int64), want[i])


# ---------------------------------------------------------------------------- wrong bit depth
def test_a_file_of_the_other_bit_depth_is_a_named_error(roots, tmp_path):
    """DALI would rescale it silently (×257 or ÷257): the loader and check-data name it."""
    from dalinorm import DaliLoader
    from dalinorm.pipelines.checks import check_split

    root = write_kind(tmp_path / "mixed", "gray16", n=2)
    odd = root / "train" / "c0" / "eight.png"
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(odd)
    cfg = kind_config(root, "gray16")
    with pytest.raises(DalinormError, match=r"eight\.png: 8-bit grayscale PNG \(8 bits per "
                                            r"sample\), but data.dtype is uint16"):
        DaliLoader(cfg, "train")
    bad = check_split(cfg, "train").bad
    assert [b.path.name for b in bad] == ["eight.png"] and "data.dtype is uint16" in bad[0].reason
    # the other way: 16-bit files in an 8-bit dataset
    eight = kind_config(root, "gray8")
    with pytest.raises(DalinormError, match=r"16-bit grayscale PNG \(16 bits per sample\), but "
                                            r"data.dtype is uint8"):
        DaliLoader(eight, "train")
    names = sorted(b.path.name for b in check_split(eight, "train").bad)
    assert names == ["0.png", "1.tif"]


# ---------------------------------------------------------------------------- shipped samples
@pytest.mark.parametrize("name, dtype", [("sample_gray", "uint8"), ("sample_gray16", "uint16")])
def test_demo_runs_on_the_shipped_gray_samples(name, dtype):
    from testkit import REPO

    from dalinorm.commands.demo import demo_lines
    from dalinorm.config import load_config

    path = REPO / "configs" / f"{name}.yaml"
    cfg = load_config(path, overrides=["loader.device=cpu"])
    assert (cfg.data.channels, cfg.data.dtype) == (1, dtype)
    lines = list(demo_lines(cfg, str(path)))
    shapes = [line for line in lines if "batch shape" in line]
    assert len(shapes) == 2 and all("[4, 1, 64, 64] float32" in line for line in shapes)
    text = "\n".join(lines)
    assert ("mean_65535" in text) == (dtype == "uint16")
    # every sample file really has the declared bit depth (16-bit: not 8-bit × 257)
    from dalinorm.data.sample_type import read_sample_type

    files = [p for p in cfg.data.root.rglob("*") if p.suffix in (".png", ".tif")]
    assert {read_sample_type(p).bits for p in files} == {16 if dtype == "uint16" else 8}
    if dtype == "uint16":
        levels = np.concatenate([np.asarray(Image.open(p)).ravel() for p in files])
        assert levels.max() == 65535 and (levels % 257 != 0).mean() > 0.9


@pytest.mark.parametrize("on_gpu", [False, True], ids=["numba", "stock"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_luma_is_pils_convert_L_in_both_implementations(tmp_path, dtype, on_gpu):
    """The CPU's numba operator and the stock-operator graph the GPU runs (built here on the
    CPU backend) both give PIL's convert("L") on 8-bit RGB (DALI's own GRAY is 1 level off on
    half the pixels) and the same integer rule on 16-bit RGB."""
    from nvidia.dali import fn, pipeline_def

    from dalinorm.config import config_from_dict
    from dalinorm.pipelines.kinds import decode_kind_args, to_data_channels

    rgb = np.random.default_rng(3).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    if dtype == "uint8":
        Image.fromarray(rgb).save(tmp_path / "x.png")
        want = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.int64)
    else:
        rgb = _sixteen(rgb, np.random.default_rng(4))
        write_png16(tmp_path / "x.png", rgb)
        w = rgb.astype(np.int64)
        want = (w[..., 0] * 19595 + w[..., 1] * 38470 + w[..., 2] * 7471 + 2**15) >> 16
    cfg = config_from_dict({"data": {"channels": 1, "dtype": dtype}, "normalize": {"source": "none"}})

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        encoded, _ = fn.readers.file(files=[str(tmp_path / "x.png")])
        images = fn.decoders.image(encoded, device="cpu", **decode_kind_args(cfg))
        return to_data_channels(images, cfg, on_gpu=on_gpu)

    p = pipe()
    p.build()
    (out,) = p.run()
    got = np.asarray(out[0])
    assert got.shape == (37, 53, 1) and got.dtype == np.dtype(dtype)
    assert np.array_equal(got[..., 0].astype(np.int64), want)


def test_moment_totals_are_python_ints_past_int64():
    """Σx² of 16-bit pixels: each image's stays in int64 (65535² · pixels < 2**63 below
    2·10⁹ pixels), the totals over images must not: two images past 2**62 each sum past
    int64 exactly; an empty accumulator merged with a 1-channel one takes its channel count
    (the all-reduce across ranks starts from one)."""
    from dalinorm.stats.moments import MomentsAccumulator

    big = 2**62 + 12345
    acc = MomentsAccumulator(channels=1)
    acc.add_batch(np.array([2_000_000_000, 2_000_000_000]), np.array([[7], [9]]),
                  np.array([[big], [big + 2]]))
    assert acc.squares == [2 * big + 2] and acc.squares[0] > 2**63 and acc.sums == [16]
    total = MomentsAccumulator().merge(acc).merge(acc)
    assert total.channels == 1 and total.squares == [4 * big + 4] and total.num_images == 4
