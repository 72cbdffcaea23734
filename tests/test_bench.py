"""The benchmark's arithmetic on fake timings and fake /proc text (no timed assertions)."""

from __future__ import annotations

import os

import pytest

from dalinorm.integration.bench import (
    BenchResult,
    EpochSample,
    cpu_seconds,
    format_table,
    parse_pss_kib,
    process_tree,
    ratio,
    summarize,
)


def test_summary_is_median_and_range():
    assert summarize([100.0, 300.0, 200.0]) == {"median": 200.0, "min": 100.0, "max": 300.0, "epochs": 3}
    assert summarize([1.0, 2.0, 3.0, 10.0])["median"] == 2.5


def test_ratio_is_of_medians():
    assert ratio(summarize([10, 20, 30]), summarize([4, 5, 100])) == pytest.approx(4.0)


def test_epoch_sample_rates():
    sample = EpochSample(images=500, seconds=2.0, cpu_seconds=3.0, peak_pss=2**30)
    assert sample.images_per_s == 250.0
    assert sample.cpu_ms_per_image == pytest.approx(6.0)
    result = BenchResult("x", [sample, EpochSample(500, 1.0, 1.0, 2**29)])
    summary = result.summary()
    assert summary["median"] == 375.0 and summary["peak_pss_mib"] == 1024.0
    assert summary["cpu_ms_per_image"] == pytest.approx(4.0)


def test_pss_is_read_from_smaps_rollup():
    text = "55d0-7ff [rollup]\nRss:              120 kB\nPss:               61 kB\nPss_Anon:  40 kB\n"
    assert parse_pss_kib(text) == 61
    assert parse_pss_kib("Rss: 1 kB\n") == 0


def test_process_tree_counts_children():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        tree = process_tree()
        assert tree[0] == os.getpid() and child.pid in tree
        assert cpu_seconds(tree) > 0
    finally:
        child.kill()
        child.wait()


def test_table_shows_ratio_and_fraction_of_floor():
    report = {
        "split": "train", "device": "cpu", "cores": 2, "batch_size": 64, "dali_threads": 2,
        "torchvision_workers": 2, "dali_over_torchvision": 2.0,
        "results": {
            "dali": summarize([800.0]) | {"cpu_ms_per_image": 2.5, "peak_pss_mib": 900.0,
                                          "fraction_of_decode_floor": 0.5},
            "decode floor": summarize([1600.0]) | {"cpu_ms_per_image": 1.2, "peak_pss_mib": 800.0},
        },
    }
    table = format_table(report)
    assert "DALI / torchvision (medians): 2.00x" in table
    assert "50%" in table and "1600" in table


def test_memory_profile_runs_one_loader_alone(colour_data):
    """A fresh process, one loader, PSS after every epoch; growth is epoch 2 to the last."""
    from dalinorm.integration.bench import memory_profile

    from testkit import make_config

    result = memory_profile(make_config(colour_data[0].root), "train", "dali", epochs=3, workers=0)
    after = result["pss_after_epoch_mib"]
    assert len(after) == 3 and all(v > 50 for v in after)  # torch + DALI alone take far more
    assert result["peak_pss_mib"] >= max(after) * 0.9
    assert result["growth_epoch2_to_last"] == pytest.approx(after[-1] / after[1] - 1)
