"""Check dalinorm's GPU path on a lent GPU machine in one command, and report every figure.

    bash benchmarks/gpu_check.sh                 # on the GPU machine (docs/GPU.md): ≤ 8 minutes
    bash benchmarks/gpu_check.sh --dry-run       # anywhere: the same steps on the CPU, tiny data

Every step runs in its own process with its own time limit, inside one overall budget
(``--budget``), so a step that fails or hangs is recorded (status, seconds, the last lines of
its output) and the next one runs. The report folder (``--report``; default ``$OUT`` when set,
else ``./gpu_report``) receives ``gpu_check.json``, ``gpu_check.md`` and ``gpu_check.log`` (all
steps' output), three files, as few as the device tool brings back.

Steps, in order (the most important figures first, in case the budget runs out):
unpack_dali, install, versions, data, bench_train, bench_eval, parity, cuda_tests,
decoder_parity, memory, train, ddp, numba_gpu. With ``--dry-run`` the GPU-only ones are recorded
as skipped and the others run on the CPU on a tiny set ("CPU twins": they test the kit, their
figures mean nothing). The CPU twins of bench, memory and train use ``loader.resize: fast``
and ``stats.reducer: sums``: each numba operator costs ≈10–25 s of compilation per process on
2 cores, which would be the whole dry run.

Exit code 0 when no step failed, 1 when one did (the reports say which).

Standard library only: the steps call ``python -m dalinorm ...``, ``examples/train.py`` and
this file's own probes (``memory-probe``, ``numba-gpu-probe``) in subprocesses.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Issue 16's targets (one H200, 16 cores, batch 256, 224 px).
TARGETS = {
    "stats_fraction_of_floor": 0.90,
    "train_img_s": 20_000,
    "eval_img_s": 15_000,
    "gpu_memory_growth": 0.05,
}

# Seconds each step may take at most (each is also cut to what is left of --budget).
CAPS = {
    "unpack_dali": 120, "install": 90, "versions": 60, "data": 120, "bench_train": 150,
    "bench_eval": 90, "parity": 90, "decoder_parity": 150, "memory": 90, "train": 120,
    "ddp": 90, "cuda_tests": 120, "numba_gpu": 60,
}


# Python's twin of `cat parts | xz -d | tar xf - -C site` (argv: site, parts...).
_UNPACK = """
import io, lzma, sys, tarfile
class Parts(io.RawIOBase):
    def __init__(self, paths):
        self.files = (open(p, "rb") for p in paths)
        self.f = next(self.files)
    def readable(self):
        return True
    def readinto(self, buf):
        while self.f is not None:
            n = self.f.readinto(buf)
            if n:
                return n
            self.f = next(self.files, None)
        return 0
with lzma.open(io.BufferedReader(Parts(sys.argv[2:]), 1 << 20)) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
    tar.extractall(sys.argv[1], filter="tar")
"""


@dataclass
class Step:
    name: str
    status: str = "skipped"  # ok | failed | skipped
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    error: str = ""  # the last lines of the output on failure, the reason for a skip
    commands: list = field(default_factory=list)


class StepFailed(Exception):
    """A step failed; ``str()`` says how (the tail of the output), ``figures`` what it measured."""

    def __init__(self, message: str, figures: dict | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


class Kit:
    """The state the steps share: arguments, environment, paths, the log, the deadline."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry = args.dry_run
        self.report_dir = Path(args.report)
        self.work = Path(args.work)
        self.data = self.work / "data"
        self.small = self.work / "data_small"
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = open(self.report_dir / "gpu_check.log", "w", encoding="utf-8")
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.start = time.monotonic()
        self.deadline = self.start + args.budget
        self.steps: list[Step] = []
        self.current: Step | None = None
        self.gpus = 0
        self._bench_help: str | None = None

    # ------------------------------------------------------------------ running commands
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, cmd: list[str], *, timeout: float, env: dict | None = None,
            ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
        """Run ``cmd`` in REPO in its own process group; kill the group at ``timeout``.
        Returns (exit code, output); raises StepFailed unless the code is in ``ok_codes``."""
        timeout = max(1.0, min(timeout, self.step_deadline - time.monotonic()))
        text = shlex.join(cmd)
        self.current.commands.append(text)
        self.log.write(f"\n=== [{self.current.name}] $ {text}\n")
        self.log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env or self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:  # something still holds the pipe: give up on it
                out = "(output lost: a process outside the tree kept the pipe open)"
            code = None
        self.log.write(out)
        self.log.write(f"=== exit {code}\n")
        self.log.flush()
        if code is None:
            raise StepFailed(f"timed out after {timeout:.0f} s\n{tail(out)}")
        if code not in ok_codes:
            raise StepFailed(f"exit code {code}\n{tail(out)}")
        return code, out

    def python(self, *args: str, **kwargs) -> tuple[int, str]:
        return self.run([sys.executable, *args], **kwargs)

    def dalinorm(self, *args: str, **kwargs) -> tuple[int, str]:
        return self.python("-m", "dalinorm", *args, **kwargs)

    # ------------------------------------------------------------------ steps
    def step(self, name: str, fn, *, gpu_only: bool = False, skip: str = "") -> None:
        step = Step(name)
        self.steps.append(step)
        if name in self.args.skip:
            step.error = "skipped with --skip"
        elif gpu_only and self.dry:
            step.error = "dry run: needs a GPU"
        elif skip:
            step.error = skip
        elif self.remaining() < 5:
            step.error = "no time left in --budget"
        else:
            self.current = step
            self.step_deadline = time.monotonic() + min(CAPS[name], self.remaining())
            t0 = time.monotonic()
            try:
                step.figures = fn() or {}
                step.status = "ok"
            except StepFailed as err:
                step.status, step.error, step.figures = "failed", str(err), err.figures
            except Exception as err:  # a bug or a surprise in the kit itself: still go on
                step.status, step.error = "failed", f"{type(err).__name__}: {err}"
            step.seconds = round(time.monotonic() - t0, 1)
        note = key_figures(asdict(step)) if step.status == "ok" else first_line(step.error)
        print(f"[{time.monotonic() - self.start:6.0f} s] {name:<15} {step.status:<8}"
              f"{step.seconds:6.1f} s  {note[:160]}", flush=True)
        self.write_report()

    def overrides(self, *extra: str, fast: bool = True) -> list[str]:
        """``--set`` arguments: the data, the device, on the dry run the small CPU settings
        (``fast``: without numba operators), then ``extra`` and the user's ``--set``."""
        sets = [f"data.root={self.data}", f"loader.device={'cpu' if self.dry else 'gpu'}"]
        if self.dry:
            sets += ["loader.batch_size=16", "loader.num_threads=2"]
            if fast:
                sets += ["loader.resize=fast", "stats.reducer=sums"]
        return as_sets(*sets, *extra, *self.args.set)

    # the steps --------------------------------------------------------------------------
    def unpack_dali(self) -> dict:
        site = Path(self.args.site)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(site), self.env.get("PYTHONPATH", "")) if p)
        probe = [sys.executable, "-c", "import nvidia.dali as d; print(d.__version__)"]
        if subprocess.run(probe, env=self.env, capture_output=True).returncode == 0:
            return {"site": str(site), "already_importable": True}
        parts = sorted(glob.glob(str(REPO / ".gpuwheels" / "p*" / "chunk.*")))
        if not parts:
            raise StepFailed("no .gpuwheels/p*/chunk.* parts and DALI is not importable: "
                             "carry the parts first (docs/GPU.md)")
        self.extract(parts, site, use_xz=bool(shutil.which("xz") and shutil.which("tar")))
        _, out = self.run(probe, timeout=60)
        return {"site": str(site), "parts": len(parts), "dali": out.strip().splitlines()[-1]}

    def extract(self, parts: list[str], site: Path, *, use_xz: bool) -> None:
        """``cat parts | xz -d | tar xf - -C site``, or the same in Python without xz."""
        site.mkdir(parents=True, exist_ok=True)
        if use_xz:
            self.run(["bash", "-c", f"set -o pipefail; cat {' '.join(shlex.quote(p) for p in parts)} "
                      f"| xz -d -T0 | tar xf - -C {shlex.quote(str(site))}"], timeout=CAPS["unpack_dali"])
        else:
            self.python("-c", _UNPACK, str(site), *parts, timeout=CAPS["unpack_dali"])

    def install(self) -> dict:
        self.python("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", ".",
                    timeout=CAPS["install"])
        return {}

    def versions(self) -> dict:
        code = r"""
import importlib.metadata as md, json, platform
def ver(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
info = {"python": platform.python_version()}
for name in ("torch", "torchvision", "nvidia-dali-cuda120", "numba", "numba-cuda", "numpy", "pillow"):
    info[name] = ver(name)
try:
    import nvidia.dali as dali
    info["nvidia-dali-cuda120"] = dali.__version__
except ImportError as err:
    info["dali_error"] = str(err)
import torch, dalinorm
info["torch_cuda"] = torch.version.cuda
info["cuda_available"] = torch.cuda.is_available()
info["gpu_count"] = torch.cuda.device_count()
info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
info["dalinorm"] = dalinorm.__file__
print("VERSIONS " + json.dumps(info))
"""
        _, out = self.python("-c", code, timeout=CAPS["versions"])
        info = json.loads(out.split("VERSIONS ", 1)[1].splitlines()[0])
        info["nvidia_smi"] = nvidia_smi("--query-gpu=name,driver_version,memory.total",
                                        "--format=csv,noheader")
        self.gpus = info["gpu_count"]
        return info

    def make_data(self) -> dict:
        train, val = self.args.train_images, self.args.val_images
        figures = {"root": str(self.data), "train": train, "val": val}
        sets = [(self.data, train, val)]
        if not self.dry:  # a small set for the 2-process CPU run of a one-GPU machine
            sets.append((self.small, 512, 128))
        for root, n, v in sets:
            if count_jpegs(root / "train") == n and count_jpegs(root / "val") == v:
                figures.setdefault("reused", []).append(str(root))
                continue
            self.python("benchmarks/make_imagenet_like.py", "--out", str(root), "--n", str(n),
                        "--val", str(v), "--jobs", str(os.cpu_count() or 1), timeout=CAPS["data"])
        return figures

    def bench(self, name: str, *args: str, sets: tuple[str, ...] = ()) -> dict:
        path = self.work / f"{name}.json"
        path.unlink(missing_ok=True)
        workers = str(2 if self.dry else self.args.workers)
        epochs = ["--epochs", "1", "--warmup", "0"] if self.dry else ["--epochs", str(self.args.epochs)]
        if self.dry and "--candidates" not in args:  # a short dry run: two of bench's candidates
            args = (*args, *only_dali_flag(self, "torchvision"))
        self.dalinorm("bench", self.args.config, *self.overrides(*sets), "--workers", workers,
                      *epochs, *args, *shlex.split(self.args.bench_args), "--json", str(path),
                      timeout=CAPS.get(name, 90))
        return bench_figures(json.loads(path.read_text()))

    def parity(self, name: str = "parity", *sets: str) -> dict:
        """``dalinorm parity`` with its JSON; a result beyond the tolerance (exit 1) still
        has figures: for ``parity`` it is a failure, for the decoder step a measurement."""
        path = self.work / f"{name}.json"
        path.unlink(missing_ok=True)
        n = "16" if self.dry else str(self.args.parity_images)
        code, out = self.dalinorm("parity", self.args.config, *self.overrides(*sets, fast=False),
                                  "--n", n, "--json", str(path), timeout=CAPS["parity"],
                                  ok_codes=(0, 1))
        figures = parity_figures(json.loads(path.read_text()))
        if name == "parity" and code == 1:
            raise StepFailed("beyond the tolerance: " + "; ".join(figures["failures"]), figures)
        return figures

    def decoder_parity(self) -> dict:
        """nvJPEG vs libjpeg on the eval recipe, DALI's default and jpeg_fancy_upsampling."""
        backend = only_dali_flag(self)
        figures = {}
        for mode in ("fast", "faithful"):
            setting = f"loader.jpeg_upsampling={mode}"
            figures[mode] = {"parity": self.parity(f"parity_{mode}", setting),
                             "eval_bench": self.bench(f"decoder_{mode}", "--split", "val", "--no-stats",
                                                      *backend, sets=(setting,))}
        fast, faithful = (dali_result(figures[m]["eval_bench"]).get("median") for m in ("fast", "faithful"))
        if fast and faithful:
            figures["faithful_eval_slowdown"] = round(1 - faithful / fast, 4)
        return figures

    def memory(self) -> dict:
        path = self.work / "memory.json"
        path.unlink(missing_ok=True)
        self.python(__file__, "memory-probe", self.args.config, *self.overrides(),
                    "--epochs", str(self.args.memory_epochs), "--json", str(path),
                    timeout=CAPS["memory"])
        return json.loads(path.read_text())

    def train(self) -> dict:
        model = ["--model", "small"] if self.dry else ["--model", self.args.model]
        _, out = self.python("examples/train.py", self.args.config, *self.overrides(), *model,
                             "--epochs", "1", timeout=CAPS["train"])
        figures = train_figures(out)
        figures["bf16_autocast"] = not self.dry  # train.py autocasts to bf16 on CUDA only
        return figures

    def ddp(self) -> dict:
        env = dict(self.env)
        if self.gpus >= 2:
            figures = {"backend": "nccl", "processes": 2, "gpus": self.gpus}
            sets, model = self.overrides(), ["--model", "resnet18"]
        else:  # one GPU: nccl cannot put two ranks on it, so the gloo branch on the CPU path
            figures = {"backend": "gloo", "processes": 2, "gpus": self.gpus, "device": "cpu"}
            env["CUDA_VISIBLE_DEVICES"] = ""
            data, batch, threads = (self.data, 16, 1) if self.dry else (self.small, 64, 6)
            sets = as_sets(f"data.root={data}", "loader.device=cpu", "loader.resize=fast",
                           f"loader.batch_size={batch}", f"loader.num_threads={threads}", *self.args.set)
            model = ["--model", "small"]
        _, out = self.python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "examples/train.py", self.args.config, *sets, *model, "--epochs", "1",
                             timeout=CAPS["ddp"], env=env)
        figures.update(train_figures(out))
        return figures

    def cuda_tests(self) -> dict:
        xml = self.work / "cuda_tests.xml"
        xml.unlink(missing_ok=True)
        code, out = self.python("-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider",
                                f"--junitxml={xml}", "tests", timeout=CAPS["cuda_tests"],
                                ok_codes=(0, 1, 5))
        figures = junit_counts(xml)
        if code == 1 or figures["failed"]:
            raise StepFailed(f"{figures['failed']} failed: " + ", ".join(figures["failed_tests"][:20])
                             + "\n" + tail(out), figures)
        return figures

    def numba_gpu(self) -> dict:
        path = self.work / "numba_gpu.json"
        path.unlink(missing_ok=True)
        self.python(__file__, "numba-gpu-probe", "--data", str(self.data / "val"), "--json", str(path),
                    timeout=CAPS["numba_gpu"])
        return json.loads(path.read_text())

    # ------------------------------------------------------------------ the whole run
    def main(self) -> int:
        a = self.args
        self.step("unpack_dali", self.unpack_dali, skip="dry run: uses the installed DALI" if self.dry else "")
        self.step("install", self.install, skip="dry run: the project is installed already" if self.dry else "")
        self.step("versions", self.versions)
        self.step("data", self.make_data)
        self.step("bench_train", lambda: self.bench("bench_train"))
        self.step("bench_eval", lambda: self.bench("bench_eval", "--split", "val", "--no-stats"))
        self.step("parity", self.parity)
        self.step("cuda_tests", self.cuda_tests)
        self.step("decoder_parity", self.decoder_parity, gpu_only=True)
        self.step("memory", self.memory)
        self.step("train", self.train)
        self.step("ddp", self.ddp)
        self.step("numba_gpu", self.numba_gpu, gpu_only=True)
        md = self.write_report(final=True)
        self.log.close()
        print(md, flush=True)
        return 1 if any(s.status == "failed" for s in self.steps) else 0

    def write_report(self, *, final: bool = False) -> str:
        """gpu_check.json and gpu_check.md as they stand (after every step: a run killed from
        outside still leaves the steps it finished)."""
        report = {
            "kit": "benchmarks/gpu_check.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "dry_run": self.dry,
            "complete": final,
            "host": os.uname().nodename,
            "cores": os.cpu_count(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()},
            "wall_s": round(time.monotonic() - self.start, 1),
            "steps": [asdict(s) for s in self.steps],
        }
        report["targets"] = targets(report)
        write_text(self.report_dir / "gpu_check.json", json.dumps(report, indent=2) + "\n")
        md = markdown(report)
        write_text(self.report_dir / "gpu_check.md", md)
        return md


# --------------------------------------------------------------------------- figures


def as_sets(*overrides: str) -> list[str]:
    """``--set KEY=VALUE`` once per override (every CLI here takes repeated flags)."""
    return [a for o in overrides for a in ("--set", o)]


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def first_line(text: str) -> str:
    return text.strip().splitlines()[0][:110] if text.strip() else ""


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, its process group and every descendant: torchrun starts its workers
    in sessions of their own, out of the group's reach."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def count_jpegs(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.jpg")) if folder.is_dir() else 0


def nvidia_smi(*args: str) -> str | None:
    try:
        proc = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def dali_candidate(kit: Kit) -> str:
    """The name bench gives dalinorm's own loader (its candidates are being extended)."""
    if kit._bench_help is None:
        kit._bench_help = kit.dalinorm("bench", "--help", timeout=60)[1]
    return "dalinorm" if "dalinorm" in kit._bench_help else "dali"


def only_dali_flag(kit: Kit, *others: str) -> list[str]:
    """bench's flag that times only dalinorm's loader (and ``others``), if it has one."""
    name = dali_candidate(kit)
    if "--candidates" in kit._bench_help:
        return ["--candidates", ",".join((name, *others))]
    if "--backend" in kit._bench_help and not others:
        return ["--backend", name]
    return []


def dali_result(figures: dict) -> dict:
    """dalinorm's own row of a bench report, whichever name bench gives it."""
    return figures.get("dalinorm") or figures.get("dali") or {}


def bench_figures(report: dict) -> dict:
    """The numbers of a ``dalinorm bench --json`` report, whatever its candidates are called."""
    if not isinstance(report.get("results"), dict):
        return {"raw": report}
    figures = {}
    for name, result in report["results"].items():
        figures[name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key, value in report.items():
        if key not in ("results",) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            figures[key] = value
    if "memory" in report:
        figures["memory"] = report["memory"]
    return figures


def parity_figures(report: dict) -> dict:
    keys = ("device", "num_images", "max_levels", "mean_levels", "tolerance", "passed", "failures",
            "shape_mismatches", "compared_pixels")
    figures = {k: report[k] for k in keys if k in report}
    if report.get("max_levels"):
        figures["max_level"] = round(max(report["max_levels"]), 3)
        figures["mean_level"] = round(sum(report["mean_levels"]) / len(report["mean_levels"]), 4)
    return figures


_EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+)\s+loss ([\d.naif]+)\s+val acc ([\d.]+)\s+([\d.]+) images/s")


def train_figures(out: str) -> dict:
    """The epoch lines examples/train.py logs (rank 0)."""
    epochs = [{"epoch": int(m[0]), "loss": float(m[2]), "val_acc": float(m[3]), "images_per_s": float(m[4])}
              for m in _EPOCH_LINE.findall(out)]
    if not epochs:
        raise StepFailed("examples/train.py printed no epoch line\n" + tail(out))
    return {"epochs": epochs, "images_per_s": epochs[-1]["images_per_s"]}


def junit_counts(path: Path) -> dict:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return {"passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"],
            "total": counts["tests"], "failed_tests": failed}


def targets(report: dict) -> list[dict]:
    """Issue 16's targets against the figures; only a GPU run measures them."""
    steps = {s["name"]: s for s in report["steps"]}

    def fig(step: str, *path: str):
        value = steps.get(step, {}).get("figures", {}) if steps.get(step, {}).get("status") == "ok" else {}
        for key in path:
            if key == "DALI":  # dalinorm's own row of a bench report
                key = "dalinorm" if isinstance(value, dict) and "dalinorm" in value else "dali"
            elif key == "STATS":  # the stats pass's row, whatever bench calls it
                key = next((k for k in value if k.startswith("stats")), key) if isinstance(value, dict) else key
            value = value.get(key) if isinstance(value, dict) else None
        return value

    rows = [
        ("stats pass >= 90% of the decode floor", fig("bench_train", "STATS", "fraction_of_decode_floor"),
         lambda v: v >= TARGETS["stats_fraction_of_floor"]),
        ("train >= 20,000 img/s (224, batch 256)", fig("bench_train", "DALI", "median"),
         lambda v: v >= TARGETS["train_img_s"]),
        ("eval >= 15,000 img/s", fig("bench_eval", "DALI", "median"), lambda v: v >= TARGETS["eval_img_s"]),
        ("GPU memory in use <= 5% growth, epoch 2 -> last", fig("memory", "growth", "device_used"),
         lambda v: v <= TARGETS["gpu_memory_growth"]),
        ("host memory: no growth (RSS <= 5%, epoch 2 -> last)", fig("memory", "growth", "host_rss"),
         lambda v: v <= TARGETS["gpu_memory_growth"]),
        ("decoder parity measured (fast and faithful)", fig("decoder_parity", "faithful", "parity", "max_level"),
         lambda v: True),
        ("exact resample kernel on the GPU: numba-cuda operator runs", fig("numba_gpu", "runs"),
         lambda v: bool(v)),
    ]
    out = []
    for what, value, check in rows:
        if report["dry_run"] or value is None:
            status = "not measured"
        else:
            status = "met" if check(value) else "not met"
        out.append({"target": what, "value": value, "status": status})
    return out


def markdown(report: dict) -> str:
    lines = [f"# GPU check {'(dry run) ' if report['dry_run'] else ''}{report['date']}"
             + ("" if report["complete"] else " (incomplete: still running or stopped)"), "",
             f"host {report['host']}, {report['cores']} cores, wall {report['wall_s']} s", "",
             "| step | status | s | key figures / error |", "|---|---|---|---|"]
    for s in report["steps"]:
        note = first_line(s["error"]) if s["status"] != "ok" else key_figures(s)
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']} | {note.replace('|', '/')} |")
    lines += ["", "| target (issue 16) | value | status |", "|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['value'] if t['value'] is not None else '–'} | {t['status']} |")
    failed = [s for s in report["steps"] if s["status"] == "failed"]
    for s in failed:
        lines += ["", f"## {s['name']} failed", "", "```", s["error"][-3000:], "```"]
    return "\n".join(lines) + "\n"


def key_figures(step: dict) -> str:
    """One line of a step's main figures for the table (the JSON has them all)."""
    try:
        return _key_figures(step)
    except (KeyError, TypeError, ValueError, AttributeError):  # figures of another shape
        return json.dumps(step["figures"])[:200]


def _key_figures(step: dict) -> str:
    f = step["figures"]
    name = step["name"]
    if name in ("bench_train", "bench_eval"):
        return ", ".join(f"{k} {v['median']:.0f} img/s" + (f" ({v['fraction_of_decode_floor']:.0%} of floor)"
                                                           if "fraction_of_decode_floor" in v else "")
                         for k, v in f.items() if isinstance(v, dict) and "median" in v)
    if name == "parity":
        return f"max {f.get('max_level')} levels, mean {f.get('mean_level')} ({f.get('num_images')} images)"
    if name == "decoder_parity":
        return "; ".join(f"{m}: max {f[m]['parity'].get('max_level')}, mean {f[m]['parity'].get('mean_level')}, "
                         f"eval {dali_result(f[m]['eval_bench']).get('median', 0):.0f} img/s"
                         for m in ("fast", "faithful"))
    if name == "memory":
        g = f.get("growth", {})
        return ", ".join(f"{k} {v:+.1%}" for k, v in g.items() if v is not None) + " (epoch 2 -> last)"
    if name in ("train", "ddp"):
        return f"{f.get('images_per_s', 0):.0f} img/s, loss {f['epochs'][-1]['loss']:.3f}" + (
            f", {f['backend']} x{f['processes']}" if "backend" in f else "")
    if name == "cuda_tests":
        return f"{f['passed']} passed, {f['failed']} failed, {f['skipped']} skipped"
    if name == "versions":
        return (f"torch {f.get('torch')} (CUDA {f.get('torch_cuda')}), DALI {f.get('nvidia-dali-cuda120')}, "
                f"GPUs {f.get('gpus')}, driver {f.get('nvidia_smi')}")
    return json.dumps(f)[:200]


def write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- probes
# Run in their own process by the steps above (``gpu_check.py memory-probe ...``).


def memory_probe(argv: list[str]) -> int:
    """Iterate the train loader for N epochs; after each: torch's allocated/reserved device
    memory, the device's used memory (cudaMemGetInfo, includes DALI's own pools), nvidia-smi's
    figure for this process and the host RSS."""
    p = argparse.ArgumentParser(prog="gpu_check.py memory-probe")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    import torch

    from dalinorm import DaliLoader, load_config

    loader = DaliLoader(load_config(a.config, overrides=a.set), "train")
    cuda = torch.cuda.is_available()
    rows = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        images = 0
        for batch, _ in loader:
            images += batch.shape[0]
        row = {"epoch": epoch, "images_per_s": round(images / (time.perf_counter() - t0), 1),
               "host_rss": rss_mib()}
        if cuda:
            torch.cuda.synchronize()
            free, total = torch.cuda.mem_get_info()
            row.update(torch_allocated=torch.cuda.memory_allocated() / 2**20,
                       torch_reserved=torch.cuda.memory_reserved() / 2**20,
                       device_used=(total - free) / 2**20,
                       nvidia_smi_process=smi_process_mib(os.getpid()))
        rows.append(row)
    keys = [k for k in rows[0] if k not in ("epoch", "images_per_s")]
    growth = {}
    for key in keys:
        second, last = rows[min(1, len(rows) - 1)][key], rows[-1][key]
        growth[key] = round(last / second - 1, 4) if second and last is not None else None
    Path(a.json).write_text(json.dumps({"device": "cuda" if cuda else "cpu", "epochs": rows,
                                        "growth": growth}, indent=2))
    return 0


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def smi_process_mib(pid: int) -> float | None:
    out = nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    for line in (out or "").splitlines():
        fields = [x.strip() for x in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid):
            return float(fields[1])
    return None  # not listed (another PID namespace, say): device_used still counts it


_COPY_KERNEL = """
def copy(out0, in0):
    y0, x0 = cuda.grid(2)
    sy, sx = cuda.gridsize(2)
    for y in range(y0, out0.shape[0], sy):
        for x in range(x0, out0.shape[1], sx):
            for c in range(out0.shape[2]):
                out0[y, x, c] = in0[y, x, c]
"""


def numba_gpu_probe(argv: list[str]) -> int:
    """Can a DALI ``NumbaFunction(device="gpu")`` (numba-cuda) run here? A grid-stride copy
    kernel on nvJPEG-decoded, resized images, checked against the input and timed: the
    precondition for running the exact resample kernel (pipelines/resample.py) on the GPU."""
    p = argparse.ArgumentParser(prog="gpu_check.py numba-gpu-probe")
    p.add_argument("--data", required=True)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    result: dict = {"runs": False}
    try:
        import numpy as np
        from numba import cuda
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.numba import NumbaFunction

        namespace = {"cuda": cuda}  # a module-level function for numba-cuda, cuda among its globals
        exec(_COPY_KERNEL, namespace)
        copy = namespace["copy"]

        def make():
            return NumbaFunction(run_fn=copy, out_types=[types.UINT8], in_types=[types.UINT8], outs_ndim=[3],
                                 ins_ndim=[3], device="gpu", blocks=[16, 16, 1], threads_per_block=[16, 16, 1])

        t0 = time.perf_counter()
        try:
            op = make()
        except RuntimeError as err:
            # DALI 2.4 knows minimal numba versions for CUDA 11 and 12 only and refuses a CUDA 13
            # toolkit outright ("Unsupported CUDA toolkit version: (13, 0)", seen on the CPU
            # machine's CUDA 13 runtime): record that, then try once without DALI's table
            if "Unsupported CUDA toolkit version" not in str(err):
                raise
            result["dali_version_check"] = str(err)
            NumbaFunction._check_minimal_numba_version = staticmethod(lambda throw=True: True)
            op = make()
            result["ran_with_version_check_bypassed"] = True
        result["compile_s"] = round(time.perf_counter() - t0, 2)

        @pipeline_def(batch_size=64, num_threads=4, device_id=0)
        def pipe():
            jpegs, _ = fn.readers.file(file_root=a.data)
            images = fn.resize(fn.decoders.image(jpegs, device="mixed"), size=[224, 224])
            return images, op(images)

        pl = pipe()
        pl.build()
        for i in range(3):
            src, dst = pl.run()
            if i == 0:
                same = all(np.array_equal(s, d) for s, d in zip(src.as_cpu().as_array(), dst.as_cpu().as_array()))
        t0 = time.perf_counter()
        for _ in range(5):
            pl.run()
        result.update(runs=bool(same), batches_per_s=round(5 / (time.perf_counter() - t0), 1))
    except Exception as err:  # the probe's answer, not a crash of the kit
        result["error"] = f"{type(err).__name__}: {err}"
    Path(a.json).write_text(json.dumps(result))
    return 0


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    out = os.environ.get("OUT")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="no GPU: CPU twins on a tiny set, GPU steps skipped")
    p.add_argument("--report", default=out or "gpu_report", help="report folder (default: $OUT, else ./gpu_report)")
    p.add_argument("--work", default="/tmp/dalinorm-gpu-check", help="data and intermediate files")
    p.add_argument("--site", default="/tmp/site", help="where DALI is unpacked (added to PYTHONPATH)")
    p.add_argument("--config", default="configs/imagenet_resnet50.yaml")
    p.add_argument("--train-images", type=int, default=None, help="default 8000 (dry run 64)")
    p.add_argument("--val-images", type=int, default=None, help="default 2000 (dry run 16)")
    p.add_argument("--parity-images", type=int, default=500)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers in bench")
    p.add_argument("--epochs", type=int, default=3, help="timed bench epochs")
    p.add_argument("--memory-epochs", type=int, default=10)
    p.add_argument("--model", default="resnet50", help="torchvision model of the train step")
    p.add_argument("--budget", type=float, default=450, help="seconds for all steps together")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every step (repeatable)")
    p.add_argument("--bench-args", default="", help="extra arguments for every `dalinorm bench` (one string)")
    p.add_argument("--skip", action="append", default=[], choices=sorted(CAPS), help="skip a step (repeatable)")
    a = p.parse_args(argv)
    if a.train_images is None:
        a.train_images = 64 if a.dry_run else 8000
    if a.val_images is None:
        a.val_images = 16 if a.dry_run else 2000
    if a.train_images < 1 or a.val_images < 1:
        p.error("--train-images and --val-images must be >= 1")
    a.config = str((REPO / a.config).resolve()) if not os.path.isabs(a.config) else a.config
    a.report = os.path.abspath(a.report)
    return a


def main(argv: list[str]) -> int:
    if argv[:1] == ["memory-probe"]:
        return memory_probe(argv[1:])
    if argv[:1] == ["numba-gpu-probe"]:
        return numba_gpu_probe(argv[1:])
    return Kit(parse_args(argv)).main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
