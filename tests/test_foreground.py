"""``stats.background``: foreground statistics (MONAI's ``NormalizeIntensity(nonzero=True)``).

Reference: float64 numpy over the pixels PIL decodes (PNG, so the black borders are exactly 0),
keeping those that differ from the background value in at least one channel. The images are
textured, with black borders of different widths and a region that is black in two channels
only (foreground: the mask is joint across channels, not per channel), and one image is all
background.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dalinorm.config import ConfigError, config_from_dict
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.stats import StatsFileError, compute_stats, read_stats_file, write_stats_file
from dalinorm.stats.normalization import resolve_normalization

from testkit import DEVICES, make_config, natural_image

SIZES = ((61, 43), (40, 75), (97, 30), (25, 25), (50, 50), (33, 64))


@pytest.fixture(scope="module")
def bordered(tmp_path_factory):
    """6 training PNGs: textured inside black borders (widths 2..12), a (0, g, 0) patch in
    each; image 3 is all black. Returns (root, per-image [pixels, 3] uint8 as PIL decodes)."""
    root = tmp_path_factory.mktemp("foreground")
    rng = np.random.default_rng(8)
    images = []
    for i, (w, h) in enumerate(SIZES):
        img = natural_image(w, h, rng)
        b = 2 + 2 * i
        img[:b], img[-b:], img[:, :b // 2], img[:, w - b:] = 0, 0, 0, 0
        img[h // 2:h // 2 + 3, w // 2:w // 2 + 3] = (0, 180, 0)  # foreground, two zero channels
        if i == 3:
            img[:] = 0
        folder = root / "train" / f"class_{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"img_{i}.png")
        (root / "val" / "class_0").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "val" / "class_0" / f"img_{i}.png")
    files = list_image_folder(root / "train").files
    pixels = [np.asarray(Image.open(f).convert("RGB")).reshape(-1, 3) for f in files]
    return root, pixels


def _foreground(pixels: list[np.ndarray]) -> list[np.ndarray]:
    return [p[(p != 0).any(axis=1)].astype(np.float64) for p in pixels]


def _check_pixel_stats(stats, pixels):
    """Exact integer sums; mean/std formed once from them: float64 numpy agrees to its own
    summation error over ~2e4 values (1e-12 relative leaves a factor > 100)."""
    fg = _foreground(pixels)
    allfg = np.concatenate(fg)
    assert stats.num_pixels == len(allfg) < sum(len(p) for p in pixels)
    assert stats.num_images == 5 and stats.background_images == 1
    assert stats.sums["sum"] == allfg.sum(axis=0).astype(np.int64).tolist()
    assert stats.sums["sum_squares"] == (allfg ** 2).sum(axis=0).astype(np.int64).tolist()
    np.testing.assert_allclose(np.array(stats.mean) * 255, allfg.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.array(stats.std) * 255, allfg.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.global_mean * 255, allfg.mean(), rtol=1e-12)
    # the background dragged the mean down by more than 10 levels: the mask matters
    everything = np.concatenate(pixels).astype(np.float64)
    assert (allfg.mean(axis=0) - everything.mean(axis=0) > 10).all()
    # the (0, 180, 0) patch is foreground: red and blue counted at level 0
    assert 0 < allfg[:, 0].tolist().count(0.0) < len(allfg)
    return allfg


@pytest.mark.parametrize("reducer", ["histogram", "sums"])
def test_stats_equal_numpy_over_the_foreground(bordered, reducer):
    """Both reducers, each with its histogram (in-graph, or counted on the host for sums):
    counts, sums, mean/std, histogram, percentiles and min/max of the foreground only."""
    root, pixels = bordered
    stats = compute_stats(make_config(root, "stats.background=0", f"stats.reducer={reducer}"),
                          histogram=True)
    allfg = _check_pixel_stats(stats, pixels)
    for c in range(3):
        expected = np.bincount(allfg[:, c].astype(np.int64), minlength=256)
        assert list(stats.histogram[c]) == expected.tolist()
        for p in (0.5, 50, 99.5):
            assert stats.percentiles[f"p{p:g}"][c] == int(
                np.percentile(allfg[:, c], p, method="inverted_cdf"))
    assert list(stats.min) == allfg.min(axis=0).astype(int).tolist()


@pytest.mark.parametrize("device", DEVICES)
def test_sums_reducer_on_each_device(bordered, device):
    """The GPU's stats path (sums, the background count with stock operators) on each device."""
    root, pixels = bordered
    stats = compute_stats(make_config(root, "stats.background=[0, 0, 0]", "stats.reducer=sums",
                                      f"loader.device={device}"))
    _check_pixel_stats(stats, pixels)
    assert stats.background == (0, 0, 0)


def test_image_weighting_skips_the_all_background_image(bordered):
    """Each foreground's mean weighs the same; the all-black image has none and is left out
    (float64 Chan merge of per-image moments: 1e-9 relative)."""
    root, pixels = bordered
    stats = compute_stats(make_config(root, "stats.background=0", "stats.weighting=image"))
    fg = [p for p in _foreground(pixels) if len(p)]
    means = np.array([p.mean(axis=0) for p in fg])
    within = np.array([p.var(axis=0) for p in fg]).mean(axis=0)
    np.testing.assert_allclose(np.array(stats.mean) * 255, means.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(np.array(stats.std) * 255,
                               np.sqrt(within + means.var(axis=0)), rtol=1e-9)
    assert stats.background_images == 1 and stats.num_images == 5


def test_a_non_black_background_per_channel(tmp_path):
    """A white slide background (255, 255, 255) written per channel; pixels of (255, 255, 0)
    stay foreground."""
    img = np.zeros((20, 30, 3), np.uint8)
    img[:] = 255
    img[5:15, 5:10] = (10, 20, 30)
    img[5:15, 20:25] = (255, 255, 0)
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "train" / "a" / "x.png")
    stats = compute_stats(make_config(tmp_path, "stats.background=[255, 255, 255]"))
    fg = img.reshape(-1, 3)[(img.reshape(-1, 3) != 255).any(axis=1)].astype(np.float64)
    assert stats.num_pixels == 100 and stats.background == (255, 255, 255)
    np.testing.assert_allclose(np.array(stats.mean) * 255, fg.mean(axis=0), rtol=1e-12)


def test_file_records_the_background_and_the_loader_checks_it(bordered, tmp_path):
    root, _ = bordered
    cfg = make_config(root, "stats.background=0")
    path = tmp_path / "fg.yaml"
    write_stats_file(path, compute_stats(cfg))
    again = read_stats_file(path)
    assert again.background == (0, 0, 0) and again.background_images == 1
    from dalinorm.commands.stats import format_stats_table

    assert ("foreground only: pixels equal to [0, 0, 0] in every channel left out; 1 image(s) "
            "all background") in format_stats_table(again)
    use = ("normalize.source=stats", f"normalize.stats_file={path}")
    assert resolve_normalization(make_config(root, "stats.background=0", *use)).mean == again.mean
    # foreground statistics applied to a config that asks for every pixel: refused
    with pytest.raises(StatsFileError, match=r"holds statistics of foreground \(background "
                                             r"\[0, 0, 0\]\), but stats.background asks for every"):
        resolve_normalization(make_config(root, *use))


def test_all_background_split_is_a_named_error(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "train" / "a" / "x.png")
    with pytest.raises(ConfigError, match=r"stats.background: every one of the 1 images"):
        compute_stats(make_config(tmp_path, "stats.background=0"))


@pytest.mark.parametrize("value, message", [
    ([0, 0], r"stats.background: must have 1 or data.channels \(3\) values, got 2"),
    (256, "stats.background: must be levels <= 255 for data.dtype uint8, got 256"),
    (-1, "stats.background: must be sample levels >= 0"),
    ("black", "stats.background: must be an integer, got str 'black'"),
    ([0.5, 0, 0], r"stats.background\[0\]: must be an integer"),
])
def test_config_errors_name_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"stats": {"background": value}})


# ---------------------------------------------------------------------- keep_background
def _keep_config(root, stats_file, *overrides):
    return make_config(root, "stats.background=0", "normalize.keep_background=true",
                       "normalize.source=stats", f"normalize.stats_file={stats_file}",
                       "loader.drop_last=false", *overrides)


@pytest.fixture(scope="module")
def bordered_stats(bordered, tmp_path_factory):
    root, _ = bordered
    path = tmp_path_factory.mktemp("fg_stats") / "fg.yaml"
    write_stats_file(path, compute_stats(make_config(root, "stats.background=0")))
    return path


@pytest.mark.parametrize("mode", ["channel", "percentile"])
def test_keep_background_eval_equals_numpy(bordered, bordered_stats, mode):
    """CPU eval: DALI's uint8 window is PIL's (exact resize); where all three channels are 0
    the output is exactly 0, elsewhere (x - m) / s in float32 (atol 2e-6 as in
    test_percentile_norm: |y| < 4). The torchvision reference path agrees to the same bound."""
    from torchvision.transforms import v2

    import torch

    from dalinorm import DaliLoader
    from dalinorm.integration.reference import reference_loader

    root, _ = bordered
    extra = (("normalize.mode=percentile", "normalize.percentiles=[1, 99]")
             if mode == "percentile" else ())
    cfg = _keep_config(root, bordered_stats, *extra, "eval.resize_shorter=32", "eval.crop=24")
    norm = resolve_normalization(cfg)
    dali = torch.cat([x for x, _ in DaliLoader(cfg, "val")]).double().numpy()
    geometry = v2.Compose([v2.Resize(32, antialias=True), v2.CenterCrop(24)])
    windows = np.stack([np.asarray(geometry(Image.open(f).convert("RGB")), np.float64)
                        .transpose(2, 0, 1)
                        for f in list_image_folder(root / "val").files])
    view = (slice(None), None, None)
    x = windows
    if norm.clipped:
        x = np.clip(x, np.round(np.array(norm.clip_low) * 255)[view],
                    np.round(np.array(norm.clip_high) * 255)[view])
    expected = (x - np.array(norm.mean)[view] * 255) / (np.array(norm.std)[view] * 255)
    background = (windows == 0).all(axis=1, keepdims=True)
    expected = np.where(background, 0.0, expected)
    # the borders are not symmetric: a mask that missed the crop or a flip would show
    assert 0.05 < background.mean() < 0.9 and (background != background[..., ::-1]).any()
    np.testing.assert_allclose(dali, expected, rtol=0, atol=2e-6)
    assert (dali[np.broadcast_to(background, dali.shape)] == 0).all()  # exactly, not about
    ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)]).double().numpy()
    np.testing.assert_allclose(ref, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_keep_background_train_on_each_device(bordered, bordered_stats, device):
    """The train graph (random crop, flip) on each device: black border pixels come out as
    exactly 0 in all channels; without keep_background none does (the background normalizes
    to -mean/std)."""
    import torch

    from dalinorm import DaliLoader

    root, _ = bordered
    for keep, low, high in (("true", 0.05, 1.0), ("false", 0.0, 0.0)):
        cfg = _keep_config(root, bordered_stats, f"normalize.keep_background={keep}",
                           f"loader.device={device}")
        images = torch.cat([x for x, _ in DaliLoader(cfg, "train")]).cpu()
        zero = (images == 0).all(dim=1).double().mean().item()
        assert low <= zero <= high, (keep, zero)


@pytest.mark.parametrize("overrides, message", [
    (("normalize.keep_background=true",), "normalize.keep_background: needs stats.background"),
    (("normalize.keep_background=true", "stats.background=0", "normalize.mode=per_image",
      "normalize.source=none"), "normalize.keep_background: is not available with normalize.mode"),
])
def test_keep_background_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({}, overrides=overrides)
