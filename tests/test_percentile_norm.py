"""``normalize.mode: percentile``: clip each channel to its training-split percentiles, then
scale to [0, 1] or standardize (MONAI's ScaleIntensityRangePercentiles).

References, independent of DALI: the clip bounds are ``numpy.percentile(method="inverted_cdf")``
over every training pixel as PIL decodes it (DALI's CPU decoder is libjpeg, bit-identical to
PIL's); the standardize moments are float64 numpy over those pixels clipped; the eval output is
float64 numpy applying the clip and the affine map to torchvision's own Resize + CenterCrop of
the PIL image (the CPU ``pil`` resize is Pillow's arithmetic, so the uint8 pixels are the same).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dalinorm import DaliLoader
from dalinorm.config import ConfigError, config_from_dict
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.integration.reference import reference_loader
from dalinorm.stats import StatsFileError, compute_stats, write_stats_file
from dalinorm.stats.normalization import resolve_normalization

from testkit import DEVICES, make_config, write_textured_folder

# Percents that are not among those the stats file records (p0.5 ... p99.5): computed exactly
# from the stored histogram, not looked up.
LOW, HIGH = 2.5, 97.3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Textured JPEGs of mixed sizes (train 12, val 6), the training split's stats file, and
    every training pixel as PIL decodes it ([pixels, 3] uint8)."""
    root = tmp_path_factory.mktemp("percentile_norm")
    write_textured_folder(root, split="train", n=12, classes=2, seed=21)
    write_textured_folder(root, split="val", n=6, classes=2, seed=22)
    stats_file = root / "train_stats.yaml"
    write_stats_file(stats_file, compute_stats(make_config(root)))
    files = list_image_folder(root / "train").files
    pixels = np.concatenate([np.asarray(Image.open(f).convert("RGB")).reshape(-1, 3)
                             for f in files])
    return root, stats_file, pixels


def _config(data, then: str = "scale", *overrides: str):
    root, stats_file, _ = data
    return make_config(root, "normalize.mode=percentile", "normalize.source=stats",
                       f"normalize.stats_file={stats_file}", f"normalize.percentiles=[{LOW}, {HIGH}]",
                       f"normalize.then={then}", "loader.drop_last=false", *overrides)


def _bounds(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([np.percentile(pixels[:, c], LOW, method="inverted_cdf") for c in range(3)])
    hi = np.array([np.percentile(pixels[:, c], HIGH, method="inverted_cdf") for c in range(3)])
    return lo, hi


@pytest.mark.parametrize("then", ["scale", "standardize"])
def test_bounds_and_moments_equal_numpy_over_the_training_pixels(data, then):
    """Bounds: exact (integers both sides). Standardize: numpy's float64 mean and std of the
    clipped pixels; dalinorm forms them from exact integer sums with one rounding each, so
    they agree to float64 rounding (1e-12 relative leaves a factor 1000 over numpy's
    pairwise summation error at 1e5 pixels); the unclipped std differs by > 1%."""
    _, _, pixels = data
    norm = resolve_normalization(_config(data, then))
    lo, hi = _bounds(pixels)
    assert np.array_equal(np.array(norm.clip_low) * 255, lo)  # k/255*255 == k for these k
    assert np.array_equal(np.round(np.array(norm.clip_high) * 255), hi)
    assert (lo > 0).all() and (hi < 255).all() and len(set(lo)) > 1  # interior, per channel
    if then == "scale":
        np.testing.assert_allclose(np.array(norm.mean) * 255, lo, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.array(norm.std) * 255, hi - lo, rtol=1e-15)
        return
    clipped = np.clip(pixels.astype(np.float64), lo, hi)
    np.testing.assert_allclose(np.array(norm.mean) * 255, clipped.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.array(norm.std) * 255, clipped.std(axis=0), rtol=1e-12)
    assert (np.abs(np.array(norm.std) * 255 / pixels.std(axis=0) - 1) > 0.01).all()


def _reference_windows(root, split: str, cfg) -> np.ndarray:
    """[N, 3, crop, crop] float64: torchvision's Resize + CenterCrop of each PIL image, uint8."""
    from torchvision.transforms import v2

    geometry = v2.Compose([v2.Resize(cfg.eval.resize_shorter, antialias=True),
                           v2.CenterCrop(cfg.eval.crop)])
    files = list_image_folder(root / split).files
    return np.stack([np.asarray(geometry(Image.open(f).convert("RGB")), np.float64)
                     .transpose(2, 0, 1) for f in files])


@pytest.mark.parametrize("then", ["scale", "standardize"])
def test_eval_output_equals_numpy_clip_then_affine(data, then):
    """CPU, loader.resize pil: DALI's uint8 window is PIL's bit for bit, the clip of integers
    to integer bounds is exact, so only crop_mirror_normalize's float32 (x - m) / s differs
    from float64: m and 1/s rounded to float32 (6e-8 relative; m <= 255, s >= 20 levels:
    < 1e-6 in output units) plus one rounding of an output |y| < 4 (2.4e-7): atol 2e-6.
    Also held to the torchvision reference path built from the same config (same bound:
    both round the same float32 operations in another order)."""
    root, _, pixels = data
    cfg = _config(data, then, "loader.device=cpu")
    norm = resolve_normalization(cfg)
    dali = torch.cat([x for x, _ in DaliLoader(cfg, "val")]).double().numpy()
    windows = _reference_windows(root, "val", cfg)
    lo, hi = _bounds(pixels)
    view = (slice(None), None, None)
    mean, std = np.array(norm.mean)[view] * 255, np.array(norm.std)[view] * 255
    expected = (np.clip(windows, lo[view], hi[view]) - mean) / std
    assert dali.shape == expected.shape == (6, 3, 32, 32)
    np.testing.assert_allclose(dali, expected, rtol=0, atol=2e-6)
    assert np.abs(expected).max() < 4
    clipped = (windows < lo[view]) | (windows > hi[view])
    assert 0.01 < clipped.mean() < 0.2  # the clip is exercised, not vacuous
    if then == "scale":
        assert dali.min() == 0.0 and dali.max() == pytest.approx(1.0, abs=1e-6)
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)]).double().numpy()
    np.testing.assert_allclose(ref, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("resize", ["pil", "fast"])
def test_output_lies_on_the_clipped_level_grid(data, device, split, resize):
    """Every path: the CPU's fused resize + clip + normalize (pil), the unfused math.clamp +
    crop_mirror_normalize (fast on the CPU; every GPU graph), train and eval: each output
    value, mapped back to levels, is an integer in [lo, hi] per channel (within 1e-3 level:
    float32 rounding of y * (hi - lo) ~ 1e-5), and both bounds are reached: the clip is
    applied and nothing else moved."""
    _, _, pixels = data
    cfg = _config(data, "scale", f"loader.device={device}", f"loader.resize={resize}")
    lo, hi = _bounds(pixels)
    images = torch.cat([x for x, _ in DaliLoader(cfg, split)]).cpu().double().numpy()
    for c in range(3):
        levels = images[:, c] * (hi[c] - lo[c]) + lo[c]
        assert np.abs(levels - np.round(levels)).max() < 1e-3
        assert levels.min() == pytest.approx(lo[c], abs=1e-3)
        assert levels.max() == pytest.approx(hi[c], abs=1e-3)


def test_stats_file_without_histogram_is_a_named_error(data, tmp_path):
    root, _, _ = data
    no_histogram = tmp_path / "sums_stats.yaml"
    write_stats_file(no_histogram, compute_stats(make_config(root, "stats.reducer=sums")))
    cfg = _config(data, "scale", f"normalize.stats_file={no_histogram}")
    with pytest.raises(StatsFileError, match=r"needs the training split's histogram.*--histogram"):
        resolve_normalization(cfg)


def test_stats_of_another_split_are_refused(data, tmp_path):
    """The leak guard holds for the clip bounds: a stats file of the val split (computed
    with --allow-split) does not match the training split's fingerprint."""
    root, _, _ = data
    val_stats = tmp_path / "val_stats.yaml"
    write_stats_file(val_stats, compute_stats(make_config(root), split="val", allow_split=True))
    cfg = _config(data, "scale", f"normalize.stats_file={val_stats}")
    with pytest.raises(StatsFileError, match="other files than the training split"):
        DaliLoader(cfg, "val")


@pytest.mark.parametrize("section, message", [
    ({"mode": "percentile"}, "normalize.source: must be 'stats' with normalize.mode 'percentile'"),
    ({"mode": "channel", "then": "scale"}, "normalize.then: is only used with normalize.mode "
                                           "'percentile', but mode is 'channel'"),
    ({"mode": "global", "percentiles": [1, 99]}, "normalize.percentiles: is only used with"),
    ({"mode": "percentile", "source": "stats", "stats_file": "s.yaml", "percentiles": [99, 1]},
     r"normalize.percentiles: must be \[low, high\] percents with 0 <= low < high <= 100"),
    ({"mode": "percentile", "source": "stats", "stats_file": "s.yaml", "percentiles": [1, 101]},
     "normalize.percentiles: must be"),
    ({"mode": "percentile", "source": "stats", "stats_file": "s.yaml", "percentiles": [1]},
     "normalize.percentiles: must be a list of 2 values, got 1"),
    ({"mode": "percentile", "source": "stats", "stats_file": "s.yaml", "then": "clip"},
     "normalize.then: must be one of scale|standardize, got 'clip'"),
    ({"mode": "percentile", "source": "stats", "stats_file": "s.yaml", "percentile": [1, 99]},
     r"normalize.percentile: unknown key \(did you mean 'percentiles'\?\)"),
    ({"mode": "percentiles"}, "normalize.mode: must be one of channel|global|per_image|percentile"),
])
def test_config_errors_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"normalize": section})


def test_defaults_are_filled_in():
    """`dalinorm validate` prints what will be applied: p0.5-p99.5, then scale."""
    cfg = config_from_dict({"normalize": {"mode": "percentile", "source": "stats",
                                          "stats_file": "s.yaml"}})
    assert cfg.normalize.percentiles == (0.5, 99.5) and cfg.normalize.then == "scale"
    assert config_from_dict({}).normalize.percentiles is None


def test_validate_explains_the_percentile_keys(data, capsys):
    """`dalinorm validate` prints the resolved keys, then what they do as YAML comments:
    the percents and the clip levels read from the stats file (the output stays YAML)."""
    import yaml

    from dalinorm import cli

    root, stats_file, pixels = data
    sample = str(cli.SAMPLE_CONFIG)
    argv = ["validate", sample, "--set", f"data.root={root}", "--set", "normalize.mode=percentile",
            "--set", "normalize.source=stats", "--set", f"normalize.stats_file={stats_file}",
            "--set", f"normalize.percentiles=[{LOW}, {HIGH}]"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["normalize"]["then"] == "scale"
    lo, hi = _bounds(pixels)
    assert ("# normalize.mode percentile: each channel clipped to its training-split "
            f"p{LOW:g}..p{HIGH:g}") in out
    assert "levels " + ", ".join(f"[{int(a)}, {int(b)}]" for a, b in zip(lo, hi)) in out


def test_multiband_arrays_are_clipped_too(tmp_path):
    """data.format numpy (5-band uint16 .npy, mixed sizes): the array graph clips as well (it
    has its own normalize step). Bounds: numpy's inverted_cdf over every stored value. Output:
    within [0, 1], both ends reached per band, and equal to the reference path within the
    array path's float32 resize tolerance (2e-6 on the [0, 1] scale, commands/parity.py's
    ARRAY_TOLERANCES), times 65535 / (hi - lo) for the scale to [0, 1]."""
    rng = np.random.default_rng(3)
    arrays = []
    for split in ("train", "val"):
        for i, (h, w) in enumerate([(40, 52), (47, 40), (64, 64), (41, 45)]):
            a = (rng.gamma(2.0, 3000.0, (h, w, 5)) + 1000 * np.arange(5)).clip(0, 65535)
            a = a.astype(np.uint16)
            folder = tmp_path / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"t{i}.npy", a)
            if split == "train":
                arrays.append(a.reshape(-1, 5))
    base = ("data.format=numpy", "data.channels=5", "data.dtype=uint16", "normalize.source=none")
    stats_file = tmp_path / "s.yaml"
    write_stats_file(stats_file, compute_stats(make_config(tmp_path, *base)))
    cfg = make_config(tmp_path, *base, "normalize.mode=percentile", "normalize.source=stats",
                      f"normalize.stats_file={stats_file}", "normalize.percentiles=[2, 98]",
                      "loader.drop_last=false")
    pixels = np.concatenate(arrays)
    lo = np.array([np.percentile(pixels[:, c], 2, method="inverted_cdf") for c in range(5)])
    hi = np.array([np.percentile(pixels[:, c], 98, method="inverted_cdf") for c in range(5)])
    norm = resolve_normalization(cfg)
    assert np.array_equal(np.round(np.array(norm.clip_low) * 65535), lo)
    assert np.array_equal(np.round(np.array(norm.clip_high) * 65535), hi)
    dali = torch.cat([x for x, _ in DaliLoader(cfg, "val")]).double()
    assert dali.shape == (4, 5, 32, 32)
    assert dali.min() >= 0 and dali.max() <= 1 + 1e-6
    per_band = dali.transpose(0, 1).reshape(5, -1)
    assert (per_band.min(dim=1).values == 0).all()
    assert torch.allclose(per_band.max(dim=1).values, torch.ones(5, dtype=torch.float64))
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)]).double()
    torch.testing.assert_close(dali, ref, rtol=0, atol=2 * 2e-6 * 65535 / (hi - lo).min())


def test_clipped_moments_and_a_flat_channel(caplog):
    """Worked example: values 0, 0, 1, 5 (counts [2, 1, 0, 0, 0, 1]) clipped to [0, 1] are
    0, 0, 1, 1: mean 0.5, std 0.5. A channel whose bounds coincide (one level) would divide by
    zero: it comes out as 0 (std 1 level) and the resolver says so."""
    from dalinorm.stats.file import DatasetStats
    from dalinorm.stats.normalization import clipped_moments, percentile_normalization

    assert clipped_moments(np.array([2, 1, 0, 0, 0, 1]), 0, 1) == (0.5, 0.5)
    flat = [0] * 256
    flat[7] = 10
    varied = list(np.bincount(np.arange(0, 250, 5), minlength=256))
    stats = DatasetStats(mean=(0.1,) * 3, std=(0.1,) * 3, global_mean=0.1, global_std=0.1,
                         num_images=1, num_pixels=10, split="train", fingerprint="x",
                         histogram=(tuple(flat), tuple(varied), tuple(varied)))
    norm = percentile_normalization(stats, (1, 99), "standardize")
    assert norm.clip_low[0] == norm.clip_high[0] == 7 / 255 and norm.std[0] == 1 / 255
    assert norm.mean[0] == 7 / 255
    assert "channel 0's p1 and p99 are both level 7" in caplog.text
