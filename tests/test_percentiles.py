"""Per-channel percentiles, min and max from the stats pass's 256-bin histograms, exactly.

Definition (the one an integer histogram gives without interpolation): numpy's
``method="inverted_cdf"``, the smallest level with at least p% of the channel's pixels at or
below it. The reference is ``numpy.percentile`` over every decoded pixel, read with PIL
(DALI's CPU decoder is libjpeg, bit-identical to PIL's), independently of DALI; equality is
exact, not approximate: both sides are integers.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dalinorm.commands.stats import format_stats_table
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.stats import StatsFileError, compute_stats, read_stats_file, write_stats_file
from dalinorm.stats.file import percentile_key
from dalinorm.stats.moments import PERCENTILES, histogram_percentile

from testkit import make_config, write_textured_folder


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory):
    """13 textured JPEGs of 7 sizes, tiny to 333x251, and one grayscale PNG."""
    root = tmp_path_factory.mktemp("percentiles")
    write_textured_folder(root, n=13, classes=2, seed=11,
                          sizes=((97, 61), (1, 1), (333, 251), (17, 9), (45, 150), (128, 80), (2, 3)))
    gray = np.random.default_rng(5).integers(60, 200, (31, 29), dtype=np.uint8)
    Image.fromarray(gray).save(root / "train" / "class_000" / "gray.png")
    return root


def _pixels(root) -> np.ndarray:
    """[pixels, 3] uint8: every training image as PIL decodes it (RGB), concatenated."""
    files = list_image_folder(root / "train").files
    return np.concatenate([np.asarray(Image.open(f).convert("RGB")).reshape(-1, 3) for f in files])


@pytest.mark.parametrize("reducer, histogram", [("histogram", False), ("sums", True)])
def test_percentiles_equal_numpy_inverted_cdf_over_the_pixels(mixed_root, reducer, histogram):
    """The in-graph histogram reducer (the CPU default), and the sums reducer with
    --histogram (the GPU's path: images counted on the host), run here on the CPU."""
    stats = compute_stats(make_config(mixed_root, f"stats.reducer={reducer}"), histogram=histogram)
    pixels = _pixels(mixed_root)
    assert stats.num_pixels == len(pixels)
    assert list(stats.percentiles) == [percentile_key(p) for p in PERCENTILES]
    assert list(stats.percentiles)[0] == "p0.5" and list(stats.percentiles)[-1] == "p99.5"
    for p in PERCENTILES:
        expected = [int(np.percentile(pixels[:, c], p, method="inverted_cdf")) for c in range(3)]
        assert list(stats.percentiles[percentile_key(p)]) == expected, p
    assert list(stats.min) == pixels.min(axis=0).tolist()
    assert list(stats.max) == pixels.max(axis=0).tolist()
    # non-decreasing in p, and the channels differ (a mixed-up channel would show)
    levels = np.array([stats.percentiles[percentile_key(p)] for p in PERCENTILES])
    assert (np.diff(levels, axis=0) >= 0).all() and len(set(stats.percentiles["p50"])) == 3


def test_sums_reducer_without_histogram_records_no_percentiles(mixed_root, tmp_path):
    stats = compute_stats(make_config(mixed_root, "stats.reducer=sums"))
    assert stats.percentiles is None and stats.min is None
    assert "percentiles" not in format_stats_table(stats)
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    assert "percentiles:" not in path.read_text() and read_stats_file(path).percentiles is None


def test_percentiles_round_trip_and_print(mixed_root, tmp_path):
    stats = compute_stats(make_config(mixed_root))
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    again = read_stats_file(path)
    assert again == stats and again.percentiles == stats.percentiles
    assert "inverted_cdf" in path.read_text()
    table = format_stats_table(again).splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("channel") and "p0.5" in line)
    assert table[header].split()[1:] == [percentile_key(p) for p in PERCENTILES]
    for c, name in enumerate("RGB"):
        row = table[header + 1 + c].split()
        assert row[0] == name
        assert [int(v) for v in row[1:]] == [stats.percentiles[percentile_key(p)][c] for p in PERCENTILES]


def test_files_without_percentiles_still_read(mixed_root, tmp_path):
    """Version 1 files written before percentiles existed: the key is optional."""
    stats = compute_stats(make_config(mixed_root))
    path = tmp_path / "old.yaml"
    write_stats_file(path, stats)
    text = path.read_text()
    start = text.index("percentiles:\n")
    old = text[:start]  # the key is written last
    assert "p99.5" not in old and "histogram:" in old
    path.write_text(old)
    again = read_stats_file(path)
    assert again.percentiles is None and again.mean == stats.mean and again.min == stats.min


@pytest.mark.parametrize("bad", ["percentiles: [1, 2]\n", "percentiles:\n  p50: [1, 2]\n",
                                 "percentiles:\n  p50: [1, 2, 3.5]\n"])
def test_bad_percentiles_are_named(mixed_root, tmp_path, bad):
    stats = compute_stats(make_config(mixed_root))
    path = tmp_path / "s.yaml"
    write_stats_file(path, stats)
    text = path.read_text()
    path.write_text(text[:text.index("percentiles:\n")] + bad)
    with pytest.raises(StatsFileError) as info:
        read_stats_file(path)
    assert str(info.value).startswith(f"{path}: 'percentiles'")


@pytest.mark.parametrize("n", [1, 2, 3, 7, 199, 200, 201, 1000, 4001, 123_457])
def test_histogram_percentile_equals_numpy_on_integer_values(n):
    """Counts of n integer values against numpy over the values themselves, at the recorded
    percentiles, the ends and rank boundaries (n = 200: p0.5 is exactly the first value)."""
    values = np.random.default_rng(n).integers(0, 256, n)
    values[: n // 3] = values[0]  # ties, so ranks land inside runs of one value
    counts = np.bincount(values, minlength=256)
    for p in (*PERCENTILES, 0, 0.1, 10, 33.3, 66.7, 90, 99.9, 100):
        assert histogram_percentile(counts, p) == int(np.percentile(values, p, method="inverted_cdf")), p


def test_histogram_percentile_worked_example():
    counts = np.bincount([0, 0, 1, 5], minlength=256)
    assert [histogram_percentile(counts, p) for p in (0, 25, 50, 51, 75, 76, 100)] == [0, 0, 0, 1, 1, 5, 5]
    with pytest.raises(ValueError):
        histogram_percentile(np.zeros(256, np.int64), 50)
