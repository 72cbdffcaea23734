"""The GPU check kit (benchmarks/gpu_check.sh) and the GPU decoder's upsampling setting.

Without a GPU the kit's dry run runs every step that can run on the CPU (tiny data, the CPU
twins of bench, parity, memory, train and the 2-process run, the cuda tests, all skipped) and
records the GPU-only ones as skipped; docs/GPU.md says what a GPU session runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from testkit import REPO, make_config, write_colour_folder

STEPS = ["unpack_dali", "install", "versions", "data", "bench_train", "bench_eval", "parity",
         "cuda_tests", "decoder_parity", "memory", "train", "ddp", "numba_gpu"]
SKIPPED_IN_DRY_RUN = {"unpack_dali", "install", "decoder_parity", "numba_gpu"}


def _kit_module():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- loader.jpeg_upsampling


def test_jpeg_upsampling_is_validated_like_every_key(tmp_path):
    from dalinorm.errors import ConfigError

    assert make_config(tmp_path).loader.jpeg_upsampling == "fast"  # DALI's default decoding
    assert make_config(tmp_path, "loader.jpeg_upsampling=faithful").loader.jpeg_upsampling == "faithful"
    with pytest.raises(ConfigError, match=r"^loader\.jpeg_upsampling: must be one of fast\|faithful, got 'exact'"):
        make_config(tmp_path, "loader.jpeg_upsampling=exact")
    with pytest.raises(ConfigError, match=r"loader\.jpeg_upsampleing: unknown key \(did you mean 'jpeg_upsampling'\?\)"):
        make_config(tmp_path, "loader.jpeg_upsampleing=fast")


def _decoder_specs(pipe) -> list[str]:
    """The OpSpec text of every decoder in a defined (not built) DALI graph."""
    found, stack, seen = [], list(pipe._graph_out), set()
    while stack:
        op = stack.pop().source
        if id(op) in seen:
            continue
        seen.add(id(op))
        if "decoders__" in str(op.spec).splitlines()[0]:
            found.append(str(op.spec))
        stack.extend(op.inputs)
    return found


@pytest.mark.parametrize("decode", ["mixed", "cpu"])
@pytest.mark.parametrize("value", ["fast", "faithful"])
def test_every_gpu_decoder_gets_fancy_upsampling_only_when_faithful(tmp_path, decode, value):
    # A GPU graph cannot be built without CUDA (DALI-NOTES.md), but it can be defined: the
    # decode device is forced to "mixed" and each decoder's arguments are read from its spec
    # (train's fused random-crop decode, the eval decode, the decode floor's). The GPU run
    # itself is the kit's decoder_parity step.
    from dalinorm.pipelines.graphs import (
        build_decode_pipeline,
        build_eval_pipeline,
        build_train_pipeline,
    )
    from dalinorm.pipelines.normalize import Normalization
    from dalinorm.pipelines.specs import GraphSpec

    class Spec(GraphSpec):
        @property
        def decode_device(self) -> str:
            return decode

    data = write_colour_folder(tmp_path, n=4)
    cfg = make_config(tmp_path, "loader.resize=fast", f"loader.jpeg_upsampling={value}")
    spec = Spec(files=[str(f) for f in data.files], labels=list(data.labels), device_id=None, seed=0)
    norm = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "test")
    specs = [text for pipe in (build_train_pipeline(cfg, spec, norm), build_eval_pipeline(cfg, spec, norm),
                               build_decode_pipeline(cfg, spec)) for text in _decoder_specs(pipe)]
    assert len(specs) == 3 and all(f"device: {decode}" in text for text in specs)
    fancy = decode == "mixed" and value == "faithful"
    assert all(("jpeg_fancy_upsampling: True" in text) == fancy for text in specs), specs


def test_cpu_graphs_build_and_agree_with_both_settings(tmp_path):
    # The CPU decoder is libjpeg whatever the setting: train and eval batches must be equal
    # bit for bit (same seed), and the graphs must build with either value.
    from dalinorm import DaliLoader

    root = tmp_path / "data"
    write_colour_folder(root, split="train", n=12)
    write_colour_folder(root, split="val", n=7)
    out = {}
    for value in ("fast", "faithful"):
        cfg = make_config(root, "loader.resize=fast", f"loader.jpeg_upsampling={value}")
        out[value] = [np.concatenate([images.numpy() for images, _ in DaliLoader(cfg, split)])
                      for split in ("train", "val")]
    for fast, faithful in zip(out["fast"], out["faithful"]):
        assert fast.shape[0] > 0
        np.testing.assert_array_equal(fast, faithful)


# --------------------------------------------------------------------------- the kit


def test_a_failing_or_hanging_step_is_recorded_and_the_next_runs(tmp_path):
    kit_module = _kit_module()
    kit = kit_module.Kit(kit_module.parse_args(["--dry-run", "--report", str(tmp_path / "r"),
                                                "--work", str(tmp_path / "w")]))
    kit.step("data", lambda: kit.python("-c", "import sys; print('broken on purpose'); sys.exit(3)",
                                        timeout=30))
    # it hangs, and its child (like torchrun's workers) runs in a session of its own
    pid_file = tmp_path / "escaped.pid"
    hang = ("import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True); "
            f"open({str(pid_file)!r}, 'w').write(str(c.pid)); print('hangs', flush=True); time.sleep(60)")
    kit.step("train", lambda: kit.python("-c", hang, timeout=3))
    kit.step("ddp", lambda: {"ran": True})
    failed, hung, after = kit.steps
    assert failed.status == "failed" and "exit code 3" in failed.error and "broken on purpose" in failed.error
    assert hung.status == "failed" and "timed out after 3 s" in hung.error and "hangs" in hung.error
    assert hung.seconds < 10  # the whole tree was killed, not waited for
    escaped = int(pid_file.read_text())
    time.sleep(0.5)
    state = (Path(f"/proc/{escaped}/stat").read_text().rsplit(")", 1)[1].split()[0]
             if Path(f"/proc/{escaped}").exists() else "gone")
    assert state in ("gone", "Z", "X"), state
    assert after.status == "ok" and after.figures == {"ran": True}
    kit.deadline = time.monotonic()  # the budget is spent: later steps are skipped, not run
    kit.step("memory", lambda: {"ran": True})
    assert kit.steps[-1].status == "skipped" and "no time left" in kit.steps[-1].error


@pytest.mark.parametrize("use_xz", [True, False], ids=["xz", "python-lzma"])
def test_wheel_parts_unpack_as_the_hook_cut_them(tmp_path, use_xz):
    # The hook's recipe: tar | xz | split into parts, each in its own folder pNN.
    import shutil

    if use_xz and not (shutil.which("xz") and shutil.which("tar")):
        pytest.skip("no xz/tar here")
    kit_module = _kit_module()
    src = tmp_path / "src" / "nvidia" / "dali"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("__version__ = '0.0-test'\n")
    (src / "blob.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    import lzma
    import tarfile

    archive = tmp_path / "all.tar.xz"
    with lzma.open(archive, "wb", preset=0) as xz, tarfile.open(fileobj=xz, mode="w|") as tar:
        tar.add(tmp_path / "src", arcname=".")
    data = archive.read_bytes()
    parts = []
    for i in range(0, len(data), 100_000):  # several parts, cut mid-stream as split does
        part = tmp_path / "parts" / f"p{i // 100_000:02d}" / f"chunk.{i // 100_000:02d}"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[i:i + 100_000])
        parts.append(str(part))
    assert len(parts) >= 3
    kit = kit_module.Kit(kit_module.parse_args(["--report", str(tmp_path / "r"), "--work", str(tmp_path / "w")]))
    site = tmp_path / "site"
    kit.step("unpack_dali", lambda: kit.extract(parts, site, use_xz=use_xz))
    assert kit.steps[0].status == "ok", kit.steps[0].error
    assert (site / "nvidia" / "dali" / "blob.bin").read_bytes() == (src / "blob.bin").read_bytes()
    assert (site / "nvidia" / "dali" / "__init__.py").read_text() == "__version__ = '0.0-test'\n"


def test_gpu_mode_data_and_unpack_are_reused_on_a_rerun(tmp_path):
    # A rerun on the still-warm machine must not unpack or write the data again.
    kit_module = _kit_module()
    args = ["--report", str(tmp_path / "r"), "--work", str(tmp_path / "w"), "--train-images", "8",
            "--val-images", "4"]
    first = kit_module.Kit(kit_module.parse_args(args))
    first.step("unpack_dali", first.unpack_dali)  # DALI is importable here: nothing to unpack
    first.step("data", first.make_data)
    assert first.steps[0].status == "ok" and first.steps[0].figures["already_importable"] is True
    assert first.steps[1].status == "ok" and "reused" not in first.steps[1].figures, first.steps[1].error
    assert sum(1 for _ in (tmp_path / "w" / "data_small" / "train").rglob("*.jpg")) == 512
    again = kit_module.Kit(kit_module.parse_args(args))
    again.step("data", again.make_data)
    assert again.steps[0].figures["reused"] == [str(tmp_path / "w" / "data"), str(tmp_path / "w" / "data_small")]
    assert again.steps[0].seconds < 5


def test_numba_gpu_probe_answers_without_a_gpu(tmp_path):
    # Without a GPU the probe must still write its answer (runs: false, and why), never crash.
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the kit's numba_gpu step runs the probe for real")
    data = write_colour_folder(tmp_path / "data", split="val", n=3)
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "numba-gpu-probe",
                           "--data", str(data.root / "val"), "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(out.read_text())
    assert answer["runs"] is False and answer["error"]


@pytest.mark.slow  # a subprocess or a training run
def test_decoder_parity_step_on_the_cpu_twin(tmp_path):
    # The step is GPU-only in the kit; run here directly, its plumbing (two parities, two eval
    # benches, the slowdown) is tested, and the CPU decoder (libjpeg) must give the same
    # levels with both settings. loader.resize=fast spares the numba compilation (its parity
    # is beyond the exact tolerance, which this step records instead of failing).
    kit_module = _kit_module()
    work = tmp_path / "work"  # the kit's data lives in WORK/data
    write_colour_folder(work / "data", split="train", n=12)
    write_colour_folder(work / "data", split="val", n=16)
    kit = kit_module.Kit(kit_module.parse_args(["--dry-run", "--report", str(tmp_path / "r"), "--work", str(work),
                                                "--set", "loader.resize=fast"]))
    kit.step("decoder_parity", kit.decoder_parity)
    step = kit.steps[0]
    assert step.status == "ok", step.error
    fast, faithful = step.figures["fast"], step.figures["faithful"]
    assert fast["parity"]["num_images"] == 16 and fast["parity"]["max_level"] >= 0
    assert fast["parity"]["max_levels"] == faithful["parity"]["max_levels"]
    assert fast["parity"]["mean_levels"] == faithful["parity"]["mean_levels"]
    assert kit_module.dali_result(faithful["eval_bench"])["median"] > 0
    assert "faithful_eval_slowdown" in step.figures
    faithful_runs = [c for c in step.commands if "faithful.json" in c]  # its parity and its bench
    assert len(faithful_runs) == 2 and all("--set loader.jpeg_upsampling=faithful" in c for c in faithful_runs)
    gpu_kit = kit_module.Kit(kit_module.parse_args(["--report", str(tmp_path / "r2"), "--work", str(work)]))
    sets = gpu_kit.overrides("loader.jpeg_upsampling=faithful")
    assert "loader.device=gpu" in sets and "loader.batch_size=16" not in sets
    assert sets[-1] == "loader.jpeg_upsampling=faithful"


@pytest.mark.slow  # a subprocess or a training run
def test_dry_run_reports_every_step(tmp_path):
    report = tmp_path / "report"
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--report",
                           str(report), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((report / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in data["steps"]}
    assert [s["name"] for s in data["steps"]] == STEPS
    for name, step in steps.items():
        expected = "skipped" if name in SKIPPED_IN_DRY_RUN else "ok"
        assert step["status"] == expected, (name, step["error"])
        if expected == "skipped":
            assert step["error"].startswith("dry run:"), name  # the reason is written down
    assert data["dry_run"] is True and data["complete"] is True and data["wall_s"] <= time.monotonic() - start
    f = {name: s["figures"] for name, s in steps.items()}
    assert f["data"]["train"] == 64 and f["data"]["val"] == 16
    row = f["bench_train"].get("dalinorm") or f["bench_train"]["dali"]
    assert row["median"] > 0 and 0 < f["bench_train"]["stats pass"]["fraction_of_decode_floor"]
    assert (f["bench_eval"].get("dalinorm") or f["bench_eval"]["dali"])["median"] > 0
    assert f["parity"]["passed"] is True and f["parity"]["num_images"] == 16
    assert f["cuda_tests"]["failed"] == 0 and f["cuda_tests"]["skipped"] == f["cuda_tests"]["total"] > 0
    assert [e["epoch"] for e in f["memory"]["epochs"]] == list(range(1, 11))
    assert f["memory"]["device"] == "cpu" and f["memory"]["growth"]["host_rss"] is not None
    assert f["train"]["epochs"][0]["epoch"] == 1 and f["ddp"]["backend"] == "gloo"
    assert all(t["status"] == "not measured" for t in data["targets"])
    md = (report / "gpu_check.md").read_text()
    for name in STEPS:
        assert f"| {name} |" in md
    assert "dry run: needs a GPU" in md
    assert "=== [bench_train] $" in (report / "gpu_check.log").read_text()
