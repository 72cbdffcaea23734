"""examples/train.py runs on the sample data on the CPU, and its loss goes down."""

from __future__ import annotations

import pytest

import re
import subprocess
import sys

from testkit import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "examples" / "train.py"), *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # a subprocess or a training run
def test_short_training_run_lowers_the_loss(tmp_path):
    proc = run("--model", "small", "--epochs", "4", "--lr", "0.05", "--checkpoint", str(tmp_path / "c.pt"))
    assert proc.returncode == 0, proc.stderr
    first, last = map(float, re.search(r"loss ([\d.]+) -> ([\d.]+) over 4 epochs", proc.stderr).groups())
    assert last < first
    resumed = run("--model", "small", "--epochs", "5", "--lr", "0.05", "--checkpoint", str(tmp_path / "c.pt"),
                  "--resume")
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr and "epoch 5/5" in resumed.stderr


@pytest.mark.slow  # a subprocess or a training run
def test_mixup_and_cutmix_train_on_the_sample_data():
    proc = run("--model", "small", "--mixup", "0.2", "--cutmix", "1.0", "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "RandomChoice(transforms=[MixUp(alpha=0.2, num_classes=7), CutMix(alpha=1.0, num_classes=7)]" \
        in proc.stderr
    loss = float(re.search(r"epoch 1/1  loss ([\d.]+)", proc.stderr).group(1))
    assert 0 < loss < 10  # finite: soft targets reached cross_entropy


@pytest.mark.slow  # a subprocess
def test_negative_mixup_alpha_is_a_one_line_error():
    proc = run("--mixup", "-0.2")
    assert proc.returncode == 2 and "--mixup: the Beta distribution's alpha must be > 0" in proc.stderr


@pytest.mark.slow  # a subprocess or a training run
def test_normalization_study_writes_table_and_plot(tmp_path):
    proc = run("--compare-normalization", "--model", "small", "--epochs", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "normalization_study.md").read_text()
    for name in ("none", "ImageNet", "dataset, per channel", "dataset, global"):
        assert name in table
    assert (tmp_path / "normalization_study.png").stat().st_size > 1000
