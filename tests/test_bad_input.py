"""Junk in image folders: each case is data (decoded as RGB, like PIL) or junk (named, with
a reason). Files are generated here; the verdicts are the table in README.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dalinorm import DaliLoader, DatasetError
from dalinorm.data.imagefolder import list_image_folder
from dalinorm.pipelines.checks import check_files
from dalinorm.stats import compute_stats, read_stats_file, write_stats_file
from PIL import Image
from testkit import REPO, make_config

RNG = np.random.default_rng(0)


def photo(w: int = 48, h: int = 32, mode: str = "RGB") -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], -1)
    rgb = np.clip(rgb + RNG.normal(0, 8, rgb.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    import io

    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90, **kw)
    return buffer.getvalue()


def write(path: Path, data: bytes | Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        data.save(path, format=fmt)
    return path


# name -> (writer, verdict): None for data, else a fragment of the reason
CASES = {
    "random_bytes.jpg": (lambda p: write(p, os.urandom(3000)), "not an image"),
    "half.jpg": (lambda p: write(p, jpeg_bytes(photo(200, 150))[:2500]), "truncated"),
    "zero.jpg": (lambda p: write(p, b""), "empty file"),
    "png.png": (lambda p: write(p, photo(), "PNG"), None),
    "png_named.jpg": (lambda p: write(p, photo(), "PNG"), None),
    "bmp.bmp": (lambda p: write(p, photo(), "BMP"), None),
    "bmp_named.jpg": (lambda p: write(p, photo(), "BMP"), None),
    "webp.webp": (lambda p: write(p, photo(), "WEBP"), None),
    "webp_named.jpg": (lambda p: write(p, photo(), "WEBP"), None),
    "cmyk.jpg": (lambda p: write(p, photo(mode="CMYK"), "JPEG"), None),
    "gray.jpg": (lambda p: write(p, photo(mode="L"), "JPEG"), None),
    "deep16.png": (lambda p: write(p, Image.fromarray(RNG.integers(0, 65535, (20, 30), dtype=np.uint16)),
                                   "PNG"), "16-bit"),
    "rgba.png": (lambda p: write(p, photo(mode="RGBA"), "PNG"), None),
    "huge.jpg": (lambda p: write(p, photo(400, 300), "JPEG"), "too large"),
    "one_pixel.jpg": (lambda p: write(p, photo(1, 1), "JPEG"), None),
    "._resource_fork.jpg": (lambda p: write(p, b"\x00\x05\x16\x07" + os.urandom(100)), "not an image"),
    "naïve café.jpg": (lambda p: write(p, photo(), "JPEG"), None),
    "with spaces.jpg": (lambda p: write(p, photo(), "JPEG"), None),
}


@pytest.fixture(scope="module")
def junk_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("junk")
    folder = root / "train" / "mixed"
    for name, (writer, _) in CASES.items():
        writer(folder / name)
    target = write(root / "elsewhere" / "real.jpg", photo(), "JPEG")
    (folder / "linked.jpg").symlink_to(target)
    write(folder / "notes.txt", b"not an image")
    write(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / "train" / "other" / "fine.jpg", photo(), "JPEG")
    return root


def test_listing_ignores_non_image_names_as_torchvision_does(junk_folder):
    names = {f.name for f in list_image_folder(junk_folder / "train").files}
    assert "notes.txt" not in names and ".DS_Store" not in names
    assert "._resource_fork.jpg" in names  # torchvision lists it too: check-data must flag it


def test_every_case_gets_its_verdict(junk_folder):
    cfg = make_config(junk_folder, "data.max_pixels=100000")  # huge.jpg has 120,000
    files = list(list_image_folder(junk_folder / "train").files)
    bad = {b.path.name: b.reason for b in check_files(files, cfg)}
    for name, (_, verdict) in CASES.items():
        if verdict is None:
            assert name not in bad, f"{name} is data but was reported: {bad.get(name)}"
        else:
            assert verdict in bad.get(name, ""), f"{name}: expected '{verdict}', got {bad.get(name)}"
    assert "linked.jpg" not in bad and "fine.jpg" not in bad
    assert len(bad) == sum(v is not None for _, v in CASES.values())


def test_data_cases_decode_as_pil_does(junk_folder):
    """Every file judged data decodes in DALI to what PIL's convert('RGB') gives."""
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline

    folder = junk_folder / "train" / "mixed"
    names = [n for n, (_, v) in CASES.items() if v is None and n != "huge.jpg"] + ["huge.jpg", "linked.jpg"]
    pipe = Pipeline(batch_size=1, num_threads=1, device_id=None)
    with pipe:
        data, _ = fn.readers.file(files=[str(folder / n) for n in names])
        pipe.set_outputs(fn.decoders.image(data, device="cpu", output_type=types.RGB))
    pipe.build()
    for name in names:
        dali = np.asarray(pipe.run()[0][0]).astype(int)
        pil = np.asarray(Image.open(folder / name).convert("RGB")).astype(int)
        assert dali.shape == pil.shape, name
        # libjpeg and the lossless formats agree exactly; CMYK→RGB conversion may round
        # differently by one level
        assert np.abs(dali - pil).max() <= (1 if name == "cmyk.jpg" else 0), name


def test_skip_mode_reads_the_checked_list_and_says_so(junk_folder, tmp_path, caplog):
    listing = tmp_path / "good.txt"
    cli = [sys.executable, "-m", "dalinorm", "check-data", str(REPO / "configs" / "sample.yaml"),
           "--set", f"data.root={junk_folder}", "--set", "data.max_pixels=100000",
           "--split", "train", "--write-list", str(listing)]
    proc = subprocess.run(cli, capture_output=True, text=True)
    assert proc.returncode == 1  # bad files found
    assert f"{junk_folder}/train/mixed/zero.jpg: empty file (0 bytes)" in proc.stdout
    text = listing.read_text()
    assert "# bad: train/mixed/half.jpg: truncated" in text and "train/mixed/gray.jpg\n" in text
    import logging

    cfg = make_config(junk_folder, "data.on_bad_file=skip", f"data.checked_list={listing}",
                      "loader.drop_last=false")
    with caplog.at_level(logging.WARNING):
        loader = DaliLoader(cfg, "train")
        seen = sum(len(y) for _, y in loader)
    junk = sum(v is not None for _, v in CASES.values())
    good = len(CASES) - junk + 2  # data cases + linked + fine
    assert loader.skipped_files == junk and seen == good
    assert f"skipping {junk} of {good + junk} files" in caplog.text and str(listing) in caplog.text
    stats = compute_stats(cfg)
    assert stats.skipped_files == junk and stats.num_images == good
    write_stats_file(tmp_path / "s.yaml", stats)
    assert read_stats_file(tmp_path / "s.yaml").skipped_files == junk


def test_error_mode_names_an_empty_file_before_training(junk_folder):
    with pytest.raises(DatasetError, match=r"zero.jpg: is empty \(0 bytes\)"):
        DaliLoader(make_config(junk_folder), "train")


def test_error_mode_names_a_file_that_fails_mid_run(tmp_path):
    write(tmp_path / "train" / "a" / "ok.jpg", photo(), "JPEG")
    CASES["half.jpg"][0](tmp_path / "train" / "a" / "half.jpg")
    with pytest.raises(DatasetError, match=r"half.jpg: cannot be read or decoded mid-run"):
        for _ in DaliLoader(make_config(tmp_path, "loader.batch_size=1"), "train"):
            pass
    with pytest.raises(DatasetError, match=r"half.jpg: cannot be read or decoded mid-run"):
        compute_stats(make_config(tmp_path, "loader.batch_size=1"))


def test_folder_structure_errors_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"data.train: split folder .*/train does not exist"):
        DaliLoader(make_config(tmp_path), "train")
    write(tmp_path / "train" / "loose.jpg", photo(), "JPEG")
    with pytest.raises(DatasetError, match=r"has no class subfolders"):
        DaliLoader(make_config(tmp_path), "train")
    (tmp_path / "train" / "empty_class").mkdir()
    write(tmp_path / "train" / "full_class" / "a.jpg", photo(), "JPEG")
    with pytest.raises(DatasetError, match=r"class folder\(s\) empty_class in .* hold no image"):
        DaliLoader(make_config(tmp_path), "train")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dalinorm", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: "data:\n  root: [unclosed\n", "invalid YAML at line"),
        (lambda d: "loader:\n  batch_size: many\n", "loader.batch_size: must be an integer"),
        (lambda d: f"normalize:\n  source: stats\n  stats_file: {d}/missing.yaml\n",
         "missing.yaml: stats file not found"),
        (lambda d: (Path(d, "bad.yaml").write_text("format: dalinorm-stats\nversion: 1\nmean: [1, 2]\n"),
                    f"normalize:\n  source: stats\n  stats_file: {d}/bad.yaml\n")[1],
         "'mean' must be a list of 3 values"),
        (lambda d: (Path(d, "old.yaml").write_text("format: dalinorm-stats\nversion: 0\n"),
                    f"normalize:\n  source: stats\n  stats_file: {d}/old.yaml\n")[1],
         "format version 0 is not supported"),
    ],
)
def test_config_and_file_errors_are_one_line_exit_2(tmp_path, setup, expected):
    config = tmp_path / "c.yaml"
    config.write_text(setup(tmp_path))
    proc = run_cli("validate", str(config))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_and_missing_split_on_the_cli(tmp_path):
    proc = run_cli("validate", str(tmp_path / "none.yaml"))
    assert proc.returncode == 2 and "none.yaml: config file not found" in proc.stderr
    proc = run_cli("stats", str(REPO / "configs" / "sample.yaml"), "--set", f"data.root={tmp_path}",
                   "--out", str(tmp_path / "s.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: data.train: split folder")


def test_skip_without_a_checked_list_checks_once_caches_and_says_so(junk_folder, tmp_path, caplog,
                                                                   monkeypatch):
    """data.on_bad_file: skip alone runs check-data's checks, caches the list by the split's
    fingerprint next to the data, logs how many files it skipped and where the list is, and
    reuses it until the split changes. No bad file is dropped without a count and a path."""
    import logging
    import shutil

    from dalinorm.data.splits import checked_list_cache, list_split

    root = tmp_path / "data"
    shutil.copytree(junk_folder, root, symlinks=True)
    cfg = make_config(root, "data.on_bad_file=skip", "data.max_pixels=100000", "loader.drop_last=false")
    junk = sum(v is not None for _, v in CASES.values())
    good = len(CASES) - junk + 2  # data cases + linked + fine
    cached, _ = checked_list_cache(cfg, "train", list_split(cfg, "train"))
    assert cached.parent == root.resolve() / ".dalinorm-cache"
    with caplog.at_level(logging.INFO, logger="dalinorm"):
        loader = DaliLoader(cfg, "train")
        assert loader.skipped_files == junk and sum(len(y) for _, y in loader) == good
    assert "checking the" in caplog.text
    assert f"{junk} of {good + junk} files of {root / 'train'} are unusable and skipped" in caplog.text
    assert str(cached) in caplog.text and f"skipping {junk} of {good + junk} files" in caplog.text
    text = cached.read_text()
    assert "# bad: train/mixed/half.jpg: truncated" in text and "train/mixed/gray.jpg\n" in text
    assert not list(cached.parent.glob(".*.tmp"))  # written atomically
    mtime = cached.stat().st_mtime_ns

    caplog.clear()  # the same split again (loader and stats pass): the list is reused
    with caplog.at_level(logging.INFO, logger="dalinorm"):
        assert DaliLoader(cfg, "train").skipped_files == junk
        assert compute_stats(cfg).skipped_files == junk
    assert "checking the" not in caplog.text and "reusing the checked list" in caplog.text
    assert cached.stat().st_mtime_ns == mtime

    write(root / "train" / "other" / "new.jpg", photo(), "JPEG")  # the split changed
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dalinorm"):
        loader = DaliLoader(cfg, "train")
    assert "is stale" in caplog.text and "checking the" in caplog.text
    assert loader.skipped_files == junk and len(loader.listing) == good + 1
    assert "train/other/new.jpg\n" in cached.read_text()


def test_automatic_checked_list_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    """Where data.root is itself a split folder (a new subfolder there would be a class), the
    list goes to $XDG_CACHE_HOME/dalinorm (else ~/.cache/dalinorm)."""
    from dalinorm.data.splits import checked_list_cache, list_split

    write(tmp_path / "data" / "a" / "x.jpg", photo(), "JPEG")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = make_config(tmp_path / "data", "data.train=.", "data.on_bad_file=skip", "loader.drop_last=false")
    path, key = checked_list_cache(cfg, "train", list_split(cfg, "train"))
    assert path.parent == tmp_path / "xdg" / "dalinorm"
    assert "fingerprint sha256:" in key and "max_pixels" in key
    loader = DaliLoader(cfg, "train")
    assert loader.skipped_files == 0 and path.is_file()
