"""train.interpolation / eval.interpolation: bicubic as well as bilinear.

On the CPU with ``loader.resize: pil`` the resize is Pillow's own fixed-point arithmetic
(pipelines/resample.py), so bicubic is compared bit for bit with the installed Pillow's
``Image.resize(..., BICUBIC)`` and, through the graphs, with torchvision's
``InterpolationMode.BICUBIC`` on PIL images (what its presets and timm use). DALI's cubic
(``pil_dali``, ``fast``, the GPU) is held to the measured rows of ``TOLERANCES_BICUBIC``.
Images are textured (waves, hard-edged discs, grain) and non-square: flat images survive any
filter unchanged, and hard edges are where bicubic's negative lobes overshoot [0, 255].
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dalinorm.commands.parity import (
    NORMALIZE_ATOL_FLOAT16,
    NORMALIZE_ATOL_FLOAT32,
    TRAIN_EDGE_MAX_LEVELS,
    run_eval_parity,
    tolerance_for,
)
from dalinorm.config import ConfigError
from PIL import Image
from testkit import DEVICES, make_config, natural_image, write_textured_folder

# non-square, and both smaller (upscaled) and larger (downscaled) than eval's 64/56 and
# train's 48: with these the eval resize goes up on one axis and down on the other, too
SIZES = ((97, 61), (61, 97), (45, 150), (150, 45), (23, 31), (257, 129))


@pytest.fixture(scope="module")
def textured_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("interp")
    write_textured_folder(root, split="train", n=12, classes=2, seed=41, sizes=SIZES)
    write_textured_folder(root, split="val", n=12, classes=2, seed=42, sizes=SIZES)
    return root


def _config(root, *overrides):
    return make_config(root, "eval.resize_shorter=64", "eval.crop=56", "train.size=48",
                       "loader.batch_size=6", *overrides)


# ---------------------------------------------------------------------------- config


def test_config_keys_default_to_bilinear_and_reject_unknown_filters(tmp_path):
    cfg = make_config(tmp_path)
    assert cfg.train.interpolation == cfg.eval.interpolation == "bilinear"
    cfg = make_config(tmp_path, "train.interpolation=bicubic", "eval.interpolation=bicubic")
    assert cfg.train.interpolation == cfg.eval.interpolation == "bicubic"
    with pytest.raises(ConfigError) as err:
        make_config(tmp_path, "train.interpolation=bicubc")
    assert str(err.value) == ("train.interpolation: must be one of bilinear|bicubic "
                              "(RandomResizedCrop's resize filter), got 'bicubc' "
                              "(did you mean 'bicubic'?)")
    with pytest.raises(ConfigError, match=r"^eval\.interpolation: must be one of bilinear\|bicubic "
                                          r"\(Resize's filter\), got 'lanczos'$"):
        make_config(tmp_path, "eval.interpolation=lanczos")
    with pytest.raises(ConfigError, match=r"^eval\.interpolation: must be a string, got int 3$"):
        make_config(tmp_path, "eval.interpolation=3")


def test_validate_explains_the_filters(capsys):
    """``dalinorm validate`` prints the resolved keys and, as YAML comments, what each filter
    does with the config's loader.resize; a typo is a one-line error with a did-you-mean."""
    import yaml
    from dalinorm import cli
    from testkit import REPO

    sample = str(REPO / "configs" / "sample.yaml")
    assert cli.main(["validate", sample, "--set", "train.interpolation=bicubic",
                     "--set", "loader.resize=fast"]) == 0
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)  # the comments keep it valid YAML
    assert resolved["train"]["interpolation"] == "bicubic"
    assert resolved["eval"]["interpolation"] == "bilinear"
    comments = [line for line in out.splitlines() if line.startswith("# ")]
    assert any(line.startswith("# train.interpolation: bicubic: RandomResizedCrop") and "BICUBIC"
               in line and "2-D DALI cubic" in line for line in comments), comments
    assert any(line.startswith("# eval.interpolation: bilinear: Resize") and "DALI linear" in line
               for line in comments), comments
    assert cli.main(["validate", sample, "--set", "eval.interpolation=bilinar"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: eval.interpolation: must be one of bilinear|bicubic (Resize's filter), "
                   "got 'bilinar' (did you mean 'bilinear'?)"]


# ---------------------------------------------------------------------------- the kernel


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(t < 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, (((t - 5) * t + 8) * t - 4) * a, 0.0))


def _unclipped_horizontal(img: np.ndarray, out_w: int) -> np.ndarray:
    """One horizontal bicubic pass in float64, not rounded nor clipped: Pillow's geometry
    (support 2 widened by the scale when shrinking, taps inside the image, renormalized)."""
    w = img.shape[1]
    scale = w / out_w
    fs = max(scale, 1.0)
    out = np.empty((img.shape[0], out_w, img.shape[2]))
    for xx in range(out_w):
        center = (xx + 0.5) * scale
        lo, hi = max(int(center - 2 * fs + 0.5), 0), min(int(center - -2 * fs + 0.5), w)
        k = _keys_cubic((np.arange(lo, hi) - center + 0.5) / fs)
        out[:, xx] = np.tensordot(img[:, lo:hi].astype(np.float64), k / k.sum(), axes=([1], [0]))
    return out


def _edges(h: int, w: int, rng) -> np.ndarray:
    """Hard 0/255 stripes and blocks: the cubic's lobes overshoot on both sides of each edge."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, (np.arange(w) // 3) % 2 == 1] = 255
    img[(np.arange(h) // 4) % 2 == 1, :, 1] = 255
    img[rng.random((h, w)) < 0.05] = (255, 0, 255)
    return img


@pytest.mark.parametrize("in_hw, out_hw", [
    ((61, 97), (40, 56)),      # both axes shrink, horizontal pass first
    ((300, 40), (30, 36)),     # height shrinks far more: Pillow 13 resizes vertically first
    ((31, 23), (64, 48)),      # upscale (5 taps, support 2)
    ((45, 150), (96, 56)),     # up on one axis, down on the other
    ((97, 61), (97, 30)),      # one axis only
])
@pytest.mark.parametrize("texture", ["natural", "edges"])
def test_bicubic_kernel_is_pillow_bit_for_bit(in_hw, out_hw, texture):
    """The numba kernel against the installed Pillow's Image.resize(BICUBIC): whole images
    and eval windows of a larger resize, textured images and hard edges whose first pass
    overshoots [0, 255] (so Pillow's clip8 of each pass decides those pixels)."""
    from dalinorm.pipelines.resample import resample_into

    rng = np.random.default_rng(sum(in_hw) * 7 + sum(out_hw))
    h, w = in_hw
    img = natural_image(w, h, rng) if texture == "natural" else _edges(h, w, rng)
    ref = np.asarray(Image.fromarray(img).resize(out_hw[::-1], Image.BICUBIC))
    out = np.empty((*out_hw, 3), np.uint8)
    resample_into(out, img, interpolation="bicubic")
    assert np.array_equal(out, ref), f"max diff {np.abs(out.astype(int) - ref).max()}"
    # the filter is not bilinear's: the same call with it differs from Pillow's bicubic
    bilinear = np.empty_like(out)
    resample_into(bilinear, img)
    assert not np.array_equal(bilinear, ref)
    crop_h, crop_w = max(1, out_hw[0] * 3 // 4), max(1, out_hw[1] * 3 // 4)
    top, left = (out_hw[0] - crop_h) // 2 + 1, (out_hw[1] - crop_w) // 2
    window = np.empty((crop_h, crop_w, 3), np.uint8)
    resample_into(window, img, out_hw[0], out_hw[1], top, left, interpolation="bicubic")
    assert np.array_equal(window, ref[top:top + crop_h, left:left + crop_w])
    if texture == "edges" and out_hw[1] != w:
        first = _unclipped_horizontal(img, out_hw[1])
        assert first.min() < -3 and first.max() > 258  # overshoot that clipping removes


def test_kernel_rejects_an_unknown_filter():
    from dalinorm.pipelines.resample import resample_into

    with pytest.raises(ValueError, match="interpolation must be one of bilinear|bicubic"):
        resample_into(np.empty((2, 2, 3), np.uint8), np.zeros((4, 4, 3), np.uint8),
                      interpolation="lanczos")


# ---------------------------------------------------------------------------- the graphs


def _levels(a: torch.Tensor, b: torch.Tensor, std) -> torch.Tensor:
    per_unit = 255 * torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    return (a.double() - b.double()).abs() * per_unit


def test_eval_recipe_bicubic_equals_torchvision(textured_root):
    """DaliLoader's eval graph with eval.interpolation: bicubic against torchvision's
    Resize(BICUBIC) + CenterCrop + Normalize on PIL images (reference_loader), image by image:
    the fused resize + normalize (float32; NHWC differs only in its store order, tested with
    bilinear in test_channels_last.py) within float32 rounding, the unfused
    path (float16: resize to uint8, then crop_mirror_normalize) within float16 rounding. One
    compiled operator per kind: another size and crop compiles nothing new."""
    from dalinorm import DaliLoader
    from dalinorm.integration.reference import reference_loader
    from dalinorm.pipelines.resample import compiled_operator_kinds

    def both(cfg):
        loader = DaliLoader(cfg, "val")
        dali = torch.cat([x for x, _ in loader])
        loader.close()
        ref = torch.cat([x for x, _ in reference_loader(cfg, "val", num_workers=0)])
        return dali, ref

    cubic = _config(textured_root, "eval.interpolation=bicubic")
    dali, ref = both(cubic)
    assert dali.shape == ref.shape == (12, 3, 56, 56)
    torch.testing.assert_close(dali, ref, atol=NORMALIZE_ATOL_FLOAT32, rtol=0)
    kinds = compiled_operator_kinds()
    assert any("bicubic" in kind for kind in kinds)

    other = _config(textured_root, "eval.interpolation=bicubic", "eval.resize_shorter=50",
                    "eval.crop=36")
    dali, ref = both(other)
    assert compiled_operator_kinds() == kinds
    torch.testing.assert_close(dali, ref, atol=NORMALIZE_ATOL_FLOAT32, rtol=0)

    half = _config(textured_root, "eval.interpolation=bicubic", "output.dtype=float16")
    dali, ref = both(half)
    assert dali.dtype == ref.dtype == torch.float16
    torch.testing.assert_close(dali.float(), ref.float(), atol=NORMALIZE_ATOL_FLOAT16, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_train_recipe_bicubic_equals_pillow_on_whole_image_windows(tmp_path, device):
    """The train graph with train.interpolation: bicubic. With scale [1, 1] and the images'
    own aspect ratio, RandomResizedCrop's window is the whole image, so each output must be
    Pillow's bicubic resize of the decoded image, flipped or not (hflip 0.5): on the CPU the
    fused resize + mirror + normalize (float32) and the unfused path (float16), bit for bit up
    to the normalization's rounding; on the GPU (DALI's cubic) within the bicubic GPU row plus
    the window-edge allowance (the window is the whole image: DALI repeats edge pixels)."""
    from dalinorm import DaliLoader

    w, h = 96, 64
    rng = np.random.default_rng(5)
    for i in range(8):
        folder = tmp_path / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        img = natural_image(w, h, rng) if i % 2 else _edges(h, w, rng)
        Image.fromarray(img).save(folder / f"i{i}.png")  # lossless: decoded == written
    mean = np.array([0.485, 0.456, 0.406]) * 255
    std = np.array([0.229, 0.224, 0.225]) * 255
    refs = []
    for path in sorted((tmp_path / "train").rglob("*.png")):
        out = np.asarray(Image.open(path).convert("RGB").resize((40, 40), Image.BICUBIC))
        refs += [(out - mean) / std, (out[:, ::-1] - mean) / std]  # even index: not flipped
    gpu = tolerance_for("gpu", "pil", "bicubic")
    flips = 0
    for dtype, atol in (("float32", NORMALIZE_ATOL_FLOAT32), ("float16", NORMALIZE_ATOL_FLOAT16)):
        cfg = make_config(tmp_path, "train.interpolation=bicubic", "train.size=40",
                          "train.scale=[1.0, 1.0]", f"train.ratio=[{w / h}, {w / h}]",
                          "loader.batch_size=4", f"loader.device={device}",
                          f"output.dtype={dtype}")
        loader = DaliLoader(cfg, "train")
        outputs = [x.permute(0, 2, 3, 1).double().cpu().numpy() for x, _ in loader]
        loader.close()
        for x in np.concatenate(outputs):
            # which image and whether flipped: the reference it is closest to (all differ)
            diffs = [np.abs(x - ref) * std for ref in refs]  # uint8 levels
            k = int(np.argmin([d.mean() for d in diffs]))
            flips += k % 2
            if device == "cpu":
                # |x| <= 2.7 here: float16's half ulp is <= 9.8e-4, float32's far less
                assert (diffs[k] / std).max() <= atol, (k, (diffs[k] / std).max())
            else:
                assert diffs[k].max() <= gpu.max_levels + TRAIN_EDGE_MAX_LEVELS
                assert diffs[k].mean() <= gpu.mean_levels
    assert 0 < flips < 16  # both flipped and unflipped outputs were compared


# ---------------------------------------------------------------------------- DALI's cubic


def test_bicubic_tolerance_rows_cover_the_bilinear_keys():
    """One bicubic row per (device, loader.resize) of the bilinear table: exact only for the
    CPU's pil, the GPU rows provisional (not measured), none tighter than bilinear's (DALI's
    cubic adds to the residual, it never removes decode differences)."""
    from dalinorm.commands.parity import TOLERANCES, TOLERANCES_BICUBIC

    assert set(TOLERANCES_BICUBIC) == set(TOLERANCES)  # 16-bit rows included
    for (device, resize), tol in TOLERANCES_BICUBIC.items():
        assert tol.exact == ((device, resize) == ("cpu", "pil"))
        assert tol.provisional == (device == "gpu")
        assert tol.max_levels >= TOLERANCES[(device, resize)].max_levels
        assert tol.mean_levels >= TOLERANCES[(device, resize)].mean_levels
        assert tolerance_for(device, resize, "bicubic") is tol
        assert tolerance_for(device, resize) is TOLERANCES[(device, resize)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("resize", ["pil", "pil_dali", "fast"])
def test_eval_parity_bicubic_within_measured_bounds(textured_root, device, resize):
    """Every loader.resize with eval.interpolation: bicubic within its row of
    TOLERANCES_BICUBIC (the parity command's check) on train and val images; the CPU's pil
    is exact, DALI's cubic close but not exact."""
    cfg = _config(textured_root, "eval.interpolation=bicubic", f"loader.resize={resize}",
                  f"loader.device={device}")
    tol = tolerance_for(device, resize, "bicubic")
    assert tol.provisional == (device == "gpu")
    for split in ("val", "train"):
        report = run_eval_parity(cfg, split=split)
        assert report.tolerance == tol
        assert report.passed, report.failures()
        if device == "cpu" and resize == "pil":
            assert max(report.max_abs) <= NORMALIZE_ATOL_FLOAT32
        elif device == "cpu":
            assert max(report.mean_levels) > 0.001  # DALI's own resize: not the exact path


@pytest.mark.parametrize("resize", ["pil_dali", "fast"])
def test_dali_cubic_reaches_the_graph(textured_root, resize):
    """DALI's resize with eval.interpolation: bicubic is much closer to torchvision's bicubic
    than the same graph with bilinear is (so INTERP_CUBIC is what runs), on the same images."""
    from dalinorm import DaliLoader
    from dalinorm.integration.reference import reference_loader

    cubic = _config(textured_root, "eval.interpolation=bicubic", f"loader.resize={resize}")
    ref = torch.cat([x for x, _ in reference_loader(cubic, "val", num_workers=0)])
    means = {}
    for interpolation in ("bicubic", "bilinear"):
        loader = DaliLoader(_config(textured_root, f"eval.interpolation={interpolation}",
                                    f"loader.resize={resize}"), "val")
        dali = torch.cat([x for x, _ in loader])
        loader.close()
        means[interpolation] = float(_levels(dali, ref, (0.229, 0.224, 0.225)).mean())
    print(f"{resize} vs torchvision bicubic, mean levels: {means}")
    assert means["bicubic"] <= tolerance_for("cpu", resize, "bicubic").mean_levels
    assert means["bilinear"] > 3 * means["bicubic"]
