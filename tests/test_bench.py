"""The benchmark's arithmetic on fake timings and fake /proc text, its idle wait, and one tiny
real run of every candidate (no timed assertions: speed is never asserted in a unit test)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from dalinorm.commands.bench import (
    CANDIDATES,
    BenchResult,
    EpochSample,
    Settled,
    compare,
    cpu_seconds,
    fastest,
    format_table,
    parse_pss_kib,
    process_tree,
    ratio,
    summarize,
    wait_until_idle,
)


def test_summary_is_median_and_range():
    assert summarize([100.0, 300.0, 200.0]) == {"median": 200.0, "min": 100.0, "max": 300.0, "epochs": 3}
    assert summarize([1.0, 2.0, 3.0, 10.0])["median"] == 2.5


def test_ratio_is_of_medians():
    assert ratio(summarize([10, 20, 30]), summarize([4, 5, 100])) == pytest.approx(4.0)


def test_epoch_sample_rates():
    sample = EpochSample(images=500, seconds=2.0, cpu_seconds=3.0, pss=2**30,
                         tail_seconds=0.2, tail_cpu_seconds=0.3)
    assert sample.images_per_s == 250.0
    assert sample.cpu_ms_per_image == pytest.approx(6.0)
    result = BenchResult("x", [sample, EpochSample(500, 1.0, 1.0, 2**29, 0.0, 0.1, settled=False)])
    summary = result.summary()
    assert summary["median"] == 375.0 and summary["pss_mib"] == 1024.0
    assert summary["cpu_ms_per_image"] == pytest.approx(4.0)
    assert summary["tail_ms"] == pytest.approx(100.0) and summary["tail_cpu_ms"] == pytest.approx(200.0)
    assert summary["unsettled_epochs"] == 1


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
        "torchvision_workers": 2, "fastest": "dalinorm",
        "dalinorm_over": {"torchvision": {"ratio_of_medians": 2.0, "paired_min": 1.5,
                                          "paired_max": 2.5}},
        "results": {
            "dalinorm": summarize([800.0]) | {"cpu_ms_per_image": 2.5, "pss_mib": 900.0,
                                              "tail_ms": 12.0, "fraction_of_decode_floor": 0.5},
            "torchvision": summarize([400.0]) | {"cpu_ms_per_image": 5.0, "pss_mib": 900.0,
                                                 "tail_ms": 1.0, "fraction_of_decode_floor": 0.25},
            "decode floor": summarize([1600.0]) | {"cpu_ms_per_image": 1.2, "pss_mib": 800.0},
        },
    }
    table = format_table(report)
    row = next(line for line in table.splitlines() if line.startswith("torchvision "))
    assert "2.00 (1.50-2.50)" in row and "25%" in row
    assert "50%" in table and "1600" in table and "fastest: dalinorm" in table


@pytest.mark.slow  # a subprocess or a training run
def test_memory_profile_runs_one_loader_alone(colour_data):
    """A fresh process, one loader, PSS after every epoch; growth is epoch 2 to the last."""
    from dalinorm.commands.bench import memory_profile
    from testkit import make_config

    result = memory_profile(make_config(colour_data[0].root), "train", "dalinorm", epochs=3, workers=0)
    after = result["pss_after_epoch_mib"]
    assert len(after) == 3 and all(v > 50 for v in after)  # torch + DALI alone take far more
    assert result["peak_pss_mib"] >= max(after) * 0.9
    assert result["growth_epoch2_to_last"] == pytest.approx(after[-1] / after[1] - 1)


def _samples(rates: list[float]) -> list[EpochSample]:
    return [EpochSample(images=100, seconds=100 / r, cpu_seconds=1.0, pss=0) for r in rates]


def test_compare_pairs_epochs_and_names_the_fastest():
    results = {"dalinorm": BenchResult("dalinorm", _samples([600.0, 400.0, 500.0])),
               "torchvision": BenchResult("torchvision", _samples([300.0, 100.0, 250.0])),
               "dali-stock": BenchResult("dali-stock", _samples([500.0, 800.0, 700.0]))}
    over = compare(results)
    assert set(over) == {"torchvision", "dali-stock"}  # not dalinorm against itself
    assert over["torchvision"]["ratio_of_medians"] == pytest.approx(500 / 250)
    # epoch by epoch: 600/300, 400/100, 500/250
    assert over["torchvision"]["paired_min"] == pytest.approx(2.0)
    assert over["torchvision"]["paired_max"] == pytest.approx(4.0)
    assert over["dali-stock"]["ratio_of_medians"] == pytest.approx(500 / 700)
    assert over["dali-stock"]["paired_min"] == pytest.approx(0.5)
    assert fastest({name: r.summary() for name, r in results.items()}) == "dali-stock"


class _FakeTree:
    """A clock and a CPU counter that follow a script of (time, cpu) readings."""

    def __init__(self, readings):
        self.readings = list(readings)
        self.i = 0
        self.sleeps = 0

    def clock(self):
        return self.readings[self.i][0]

    def cpu(self):
        value = self.readings[self.i][1]
        return value

    def sleep(self, _seconds):
        self.sleeps += 1
        self.i += 1


def test_idle_wait_ends_the_tail_where_the_work_stopped():
    # the docstring's worked example: busy until t = 0.2, quiet (one tick) after
    tree = _FakeTree([(0.0, 5.00), (0.1, 5.18), (0.2, 5.30), (0.3, 5.30), (0.4, 5.31),
                      (0.5, 5.31), (0.6, 5.31)])
    end = wait_until_idle(read_cpu=tree.cpu, clock=tree.clock, sleep=tree.sleep,
                          interval=0.1, window=0.3, busy_fraction=0.1)
    assert end == Settled(0.2, 5.30, True)
    assert tree.sleeps == 5  # it needed the quiet window up to t = 0.5 to know


def test_idle_wait_on_an_idle_tree_charges_nothing():
    tree = _FakeTree([(k * 0.05, 2.0) for k in range(20)])
    end = wait_until_idle(read_cpu=tree.cpu, clock=tree.clock, sleep=tree.sleep)
    assert end == Settled(0.0, 2.0, True)


def test_idle_wait_gives_up_on_a_busy_tree_and_charges_everything():
    # half a core busy for ever: never idle; bounded by max_wait, charged up to the last reading
    tree = _FakeTree([(k * 0.05, k * 0.025) for k in range(100)])
    end = wait_until_idle(read_cpu=tree.cpu, clock=tree.clock, sleep=tree.sleep, max_wait=1.0)
    assert not end.settled
    assert end.time == pytest.approx(1.0) and end.cpu == pytest.approx(0.5)


def test_epoch_is_charged_up_to_the_end_of_its_tail():
    """Work after the last batch (the idle wait's end) counts in the epoch's time and CPU."""
    import time

    import torch
    from dalinorm.commands.bench import _time_epoch, tree_cpu_seconds

    # the wait reports that the tree kept working 0.5 s and 0.25 CPU s after the last batch
    def settle():
        return Settled(time.perf_counter() + 0.5, tree_cpu_seconds() + 0.25, True)

    batches = [(torch.zeros(4, 3, 2, 2), torch.zeros(4)), (torch.zeros(3, 3, 2, 2), torch.zeros(3))]
    sample = _time_epoch(batches, lambda x: x, settle)
    assert sample.images == 7 and sample.settled
    assert 0.5 <= sample.tail_seconds < 0.6 and sample.seconds >= sample.tail_seconds
    assert 0.25 <= sample.tail_cpu_seconds < 0.35 and sample.cpu_seconds >= sample.tail_cpu_seconds
    # a wait that ends at once (an idle tree) charges nothing extra
    quiet = _time_epoch(batches, lambda x: x, lambda: Settled(0.0, 0.0, True))
    assert quiet.tail_seconds == 0.0 and quiet.tail_cpu_seconds == 0.0


def test_idle_wait_sees_a_child_burning_cpu_and_exiting():
    """Real /proc: a child that works for 0.3 CPU s after the epoch, then exits, is charged
    in full (its time moves to the parent's cutime when it is reaped)."""
    import subprocess
    import sys

    before = cpu_seconds(process_tree())
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ntime.sleep(0.5)"])
    # a 1 s quiet window: a loaded machine may stall the child for a moment before it ends
    end = wait_until_idle(window=1.0, max_wait=60.0)
    # 0.3 s less five ticks: tick-sampled accounting undercounts under load (0.27 seen)
    assert end.settled and end.cpu - before >= 0.25
    child.wait()  # reaped: its CPU time is now its parent's cutime
    assert cpu_seconds(process_tree()) - before >= 0.25


def test_plain_transforms_compute_the_config_recipe(tmp_path):
    """The classic (v1) and v2 baselines do dalinorm's work: the eval tensors equal the
    reference recipe's; the train ones are the configured size."""
    import torch
    from dalinorm.commands.bench import plain_transform
    from dalinorm.integration.reference import reference_transform
    from PIL import Image
    from testkit import make_config, natural_image

    cfg = make_config(tmp_path)
    img = Image.fromarray(natural_image(97, 61, np.random.default_rng(3)))
    want = reference_transform(cfg, "val")(img)
    for v2 in (False, True):
        got = plain_transform(cfg, "val", v2=v2)(img)
        # ToTensor divides by 255, ToDtype(scale) too: the same float32 operations, so the
        # tolerance only covers the order of rounding in Normalize (1 ulp of ~2.6)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
        assert plain_transform(cfg, "train", v2=v2)(img).shape == (3, 32, 32)


@pytest.mark.slow  # a subprocess or a training run
def test_bench_runs_every_candidate_and_reports_them(colour_data, tmp_path):
    """A tiny real run (2 timed epochs of 37 images): every candidate, the floor and the stats
    pass are in the report and its JSON, each candidate read whole epochs of the same
    images, and the ratios are the report's own arithmetic."""
    import json

    from dalinorm.commands.bench import run_bench, write_report
    from testkit import make_config

    cfg = make_config(colour_data[0].root)
    report = run_bench(cfg, split="train", epochs=2, warmup=1, workers=1)
    write_report(tmp_path / "bench.json", report)
    back = json.loads((tmp_path / "bench.json").read_text())
    res = back["results"]
    assert set(CANDIDATES) | {"decode floor", "stats pass"} == set(res)
    for name in CANDIDATES:
        assert res[name]["epochs"] == 2
        assert res[name]["images_per_epoch"] == 35  # 37 images, batch 5, drop_last
        assert res[name]["cpu_ms_per_image"] > 0
    assert res["decode floor"]["images_per_epoch"] == 37
    assert set(back["dalinorm_over"]) == set(CANDIDATES) - {"dalinorm"}
    for name, over in back["dalinorm_over"].items():
        assert over["ratio_of_medians"] == pytest.approx(res["dalinorm"]["median"] / res[name]["median"])
        assert over["paired_min"] <= over["paired_max"]
    assert back["fastest"] == max(CANDIDATES, key=lambda n: res[n]["median"])
    table = format_table(back)
    assert all(name in table for name in CANDIDATES) and f"fastest: {back['fastest']}" in table


def test_stock_graph_eval_epochs_are_whole_and_repeatable(colour_data):
    """DALI's stock graph behind its own iterator: every val image once per epoch, in order,
    epoch after epoch (the reader-linked iterator's padding and reset)."""
    import torch
    from dalinorm.commands.bench import build_candidate
    from testkit import make_config

    train, val = colour_data
    cfg = make_config(train.root)
    loader = build_candidate("dali-stock", cfg, "val", workers=0)
    epochs = [[(x.clone(), y.clone()) for x, y in loader] for _ in range(2)]
    for batches in epochs:
        images = torch.cat([x for x, _ in batches])
        labels = torch.cat([y for _, y in batches])
        assert images.shape == (23, 3, 32, 32)
        assert labels.tolist() == list(val.labels)
        # flat colours: the stock resize keeps them, so each image is identified exactly
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        assert val.identify(images.numpy(), mean, std) == list(range(23))
    assert torch.equal(torch.cat([x for x, _ in epochs[0]]), torch.cat([x for x, _ in epochs[1]]))


def test_cli_rejects_an_unknown_candidate(capsys):
    from dalinorm.cli import build_parser

    args = build_parser().parse_args(["bench", "c.yaml", "--candidates", "dalinorm,dali-stock"])
    assert args.candidates == ("dalinorm", "dali-stock")
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["bench", "c.yaml", "--candidates", "dalinorm,pillow-simd"])
    assert exit_info.value.code == 2
    assert "unknown candidate pillow-simd" in capsys.readouterr().err
