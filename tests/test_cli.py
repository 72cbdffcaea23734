"""The command line's contract (README's exit-code table), the public API, and the errors a
user can cause: each a DalinormError subclass with one line naming the key or argument."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import dalinorm
import pytest
from dalinorm import cli
from dalinorm.errors import (
    ConfigError,
    DalinormError,
    MissingDependencyError,
    UsageError,
)
from testkit import REPO, make_config, write_textured_folder

SAMPLE = str(REPO / "configs" / "sample.yaml")
INTERNAL = re.compile(r"^error: internal error: RuntimeError: boom in config_to_dict "
                      r"\(rerun with --debug for the traceback\)$")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=REPO.parent)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------- version
def test_version_flag_prints_the_one_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"dalinorm {dalinorm.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", dalinorm.__version__)


def test_pyproject_takes_the_version_from_the_package():
    import importlib.metadata

    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dalinorm.version.__version__"}
    # what pip installed was built from the same attribute
    assert importlib.metadata.version("dalinorm") == dalinorm.__version__


# ---------------------------------------------------------------------- public API
NAMED_IN_THE_ISSUE = ("compute_stats", "DatasetStats", "write_stats_file", "read_stats_file",
                      "reference_loader", "DaliLoader", "load_config")


def test_every_public_name_imports_from_the_top_level():
    assert set(NAMED_IN_THE_ISSUE) <= set(dalinorm.__all__)
    for name in dalinorm.__all__:
        assert getattr(dalinorm, name) is not None, name
        assert name in dalinorm.__doc__, f"{name} is public but not in the module docstring"
    from dalinorm import (  # noqa: F401
        compute_stats,
        read_stats_file,
        reference_loader,
        write_stats_file,
    )
    from dalinorm.stats import compute_stats as from_stats

    assert compute_stats is from_stats
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dalinorm.nope  # noqa: B018


def test_import_dalinorm_stays_light():
    proc = run_python("""
        import sys, dalinorm
        heavy = [m for m in ("torch", "torchvision", "nvidia.dali", "numba", "matplotlib") if m in sys.modules]
        print(heavy)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_missing_heavy_dependency_says_what_to_install():
    # the module is made unimportable in a child process (sys.modules[name] = None), as on a
    # machine without it
    proc = run_python("""
        import sys
        sys.modules["torch"] = None
        from dalinorm import DalinormError
        try:
            from dalinorm import DaliLoader
        except DalinormError as err:
            print(type(err).__name__, "|", err)
    """)
    assert proc.stdout.strip() == ("MissingDependencyError | dalinorm.DaliLoader needs torch, which is "
                                   "not installed: pip install torch"), proc.stderr
    proc = run_python(f"""
        import sys
        sys.modules["matplotlib"] = None
        from dalinorm.cli import main
        sys.exit(main(["stats", {SAMPLE!r}, "--out", "/nonexistent/s.yaml", "--plot", "h.png"]))
    """)
    assert proc.returncode == 2
    assert one_line(proc.stderr) == ("error: --plot (histograms) needs matplotlib, which is not "
                                     "installed: pip install 'dalinorm[plot]' (or matplotlib)")


# ---------------------------------------------------------------------- exit codes
def test_config_error_is_one_line_exit_2(capsys):
    assert cli.main(["validate", SAMPLE, "--set", "train.hflip=2"]) == 2
    err = capsys.readouterr().err
    assert one_line(err) == "error: train.hflip: must be a probability in [0, 1], got 2.0"


def _break_validate(monkeypatch):
    # a dalinorm function (not DALI or torch) that fails as a bug would
    def boom(cfg):
        raise RuntimeError("boom in config_to_dict\nsecond line")

    monkeypatch.setattr(cli, "config_to_dict", boom)


def test_internal_error_is_one_line_exit_3(monkeypatch, capsys):
    _break_validate(monkeypatch)
    assert cli.main(["validate", SAMPLE]) == 3
    err = capsys.readouterr().err
    assert INTERNAL.match(one_line(err)), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--debug", "validate", SAMPLE], ["validate", SAMPLE, "--debug"]],
                         ids=["before", "after"])
def test_debug_before_or_after_the_subcommand_shows_the_traceback(monkeypatch, capsys, argv):
    _break_validate(monkeypatch)
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in boom" in err, err
    assert INTERNAL.match(err.strip().splitlines()[-1])
    # and for a user error: the same exit code, with the traceback
    monkeypatch.undo()
    assert cli.main([*argv, "--set", "train.hflip=2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("got 2.0")


def test_without_debug_the_flag_stays_off():
    args = cli.build_parser().parse_args(["validate", SAMPLE])
    assert args.debug is False
    assert cli.build_parser().parse_args(["--debug", "validate", SAMPLE]).debug is True
    assert cli.build_parser().parse_args(["validate", SAMPLE, "--debug"]).debug is True


def test_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "config_to_dict", interrupted)
    assert cli.main(["validate", SAMPLE]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


def test_usage_error_exits_2_through_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["stats"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--workers", "-1"], ["--warmup", "-1"],
                                  ["--memory-epochs", "-2"]])
def test_bench_counts_are_checked_by_argparse(argv, capsys):
    # --epochs 0 left bench no epoch to take a median of (an internal error, exit 3)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "configs/sample.yaml", *argv])
    assert exit_.value.code == 2
    assert f"argument {argv[0]}: must be >=" in capsys.readouterr().err


def test_unwritable_output_is_exit_2_naming_the_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = cli.main(["check-data", SAMPLE, "--split", "val", "--write-list", str(blocker / "good.txt")])
    assert code == 2
    # the OS's reason, after the path it is about; no traceback
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"error: {blocker}: ") and "Traceback" not in err, err


# ---------------------------------------------------------------------- formerly plain errors
def test_reducer_and_rank_errors_are_dalinorm_errors():
    from dalinorm.pipelines.device import distributed_rank_world
    from dalinorm.pipelines.reductions import choose_reducer

    with pytest.raises(ConfigError) as info:
        choose_reducer("histogram", on_gpu=True)
    assert one_line(str(info.value)).startswith("stats.reducer: 'histogram' runs on the CPU only")
    for rank, world, argument in ((1, None, "world_size"), (None, 2, "rank"), (3, 2, "rank"),
                                  (0, 0, "world_size")):
        with pytest.raises(DalinormError) as info:
            distributed_rank_world(rank, world)
        assert isinstance(info.value, ValueError)  # callers that caught ValueError still do
        assert one_line(str(info.value)).startswith(f"{argument}: "), str(info.value)


def test_shard_size_and_stats_file_misuse_are_usage_errors():
    from dalinorm.commands.pack import parse_size

    with pytest.raises(UsageError, match=r"^--shard-size: expected a size like 1GB"):
        parse_size("lots")
    assert issubclass(MissingDependencyError, ImportError) and issubclass(UsageError, ValueError)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_data")
    write_textured_folder(root, split="train", n=6, classes=2)
    write_textured_folder(root, split="val", n=4, classes=2)
    return root


def test_loader_misuse_errors_name_the_argument(small_folder):
    from dalinorm import DaliLoader

    cfg = make_config(small_folder)
    with pytest.raises(UsageError, match=r"^split: expected 'train' or 'val', got 'test'$"):
        DaliLoader(cfg, "test")
    val = DaliLoader(cfg, "val")
    with pytest.raises(UsageError) as info:
        val.state_dict()
    assert one_line(str(info.value)).startswith("state_dict(): the 'val' loader has no position")
    train = DaliLoader(cfg, "train")
    with pytest.raises(UsageError, match=r"^load_state_dict\(\): not a DaliLoader.state_dict\(\)"):
        train.load_state_dict({"epoch": 1})
    state = train.state_dict()
    with pytest.raises(UsageError, match=r"^loader state: seed is 7 in the checkpoint but 8 here"):
        DaliLoader(make_config(small_folder, "loader.seed=8"), "train").load_state_dict(state)
    train.close()
    with pytest.raises(UsageError, match="^DaliLoader: this loader was closed"):
        iter(train)


# ---------------------------------------------------------------------- DALI failures
def _bad_crop_pipeline(files):
    """A real DALI pipeline whose operator argument is out of range: fails at run time, not
    because of any file."""
    from nvidia.dali import fn
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    with pipe:
        jpegs, _ = fn.readers.file(files=[str(f) for f in files])
        images = fn.decoders.image(jpegs, device="cpu")
        pipe.set_outputs(fn.crop(images, crop=(8, 8), crop_pos_x=3.0))
    return pipe


def test_a_non_file_dali_failure_is_not_blamed_on_a_file(small_folder):
    from dalinorm import DatasetError, PipelineError
    from dalinorm.integration.loader import _PipelineFeed
    from dalinorm.pipelines.run import run_batches
    from dalinorm.stats.compute import _named

    files = sorted((small_folder / "train").rglob("*.jpg"))
    # through the stats pass's wrapper
    pipe = _bad_crop_pipeline(files)
    pipe.build()
    with pytest.raises(PipelineError) as info:
        list(_named(run_batches(pipe, 2)))
    message = one_line(str(info.value))
    assert not isinstance(info.value, DatasetError)
    assert message.startswith("DALI pipeline failed in fn.crop (not a file problem): ")
    assert "Anchor for dimension 1 (3.000000) is out of range" in message
    assert "check-data" not in message and "mid-run" not in message
    # through the loader's feed
    with pytest.raises(PipelineError, match=r"^DALI pipeline failed in fn.crop"):
        _PipelineFeed(_bad_crop_pipeline(files), None).next()


def test_a_truncated_file_mid_run_is_still_named(tmp_path):
    from dalinorm import DaliLoader, DatasetError, PipelineError

    data = write_textured_folder(tmp_path, n=2, classes=1)
    # a JPEG cut short inside its entropy-coded data: the header parses, the decode fails
    good = data.files[0]
    (good.parent / "zz_half.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"zz_half.jpg: cannot be read or decoded mid-run") as info:
        for _ in DaliLoader(make_config(tmp_path, "loader.batch_size=1"), "train"):
            pass
    assert not isinstance(info.value, PipelineError)
    assert "check-data" in one_line(str(info.value))


def _dali_error(files, step) -> RuntimeError:
    """The error a real CPU pipeline (file reader → decoder → ``step``) raises on ``files``."""
    from nvidia.dali import fn
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    with pipe:
        jpegs, _ = fn.readers.file(files=[str(f) for f in files])
        pipe.set_outputs(step(fn.decoders.image(jpegs, device="cpu")))
    with pytest.raises(RuntimeError) as info:
        pipe.build()
        for _ in files:
            pipe.run()
    return info.value


def test_which_dali_errors_are_about_a_file(small_folder, tmp_path):
    """check-data, the loader and the stats pass share this verdict: a read or decode failure
    is the file's (named when DALI names it), anything else is the pipeline's."""
    import os

    from dalinorm.pipelines.run import is_file_error
    from nvidia.dali import fn

    good = sorted((small_folder / "train").rglob("*.jpg"))[0]
    truncated, noise, empty = tmp_path / "half.jpg", tmp_path / "noise.jpg", tmp_path / "empty.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    noise.write_bytes(os.urandom(3000))  # DALI names no file: "nvImageCodec failure"
    empty.write_bytes(b"")

    def keep(images):
        return images

    for bad in (truncated, noise, empty):
        assert is_file_error(_dali_error([bad], keep)), bad.name
    assert not is_file_error(_dali_error([good], lambda im: fn.crop(im, crop=(8, 8), crop_pos_x=3.0)))
    assert not is_file_error(_dali_error([good], lambda im: fn.reshape(im, shape=[7])))
