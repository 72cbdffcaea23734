"""``dalinorm bench``: images/s of the DALI loader against the torchvision DataLoader.

Method: both loaders are built once; after ``warmup`` epochs each, ``epochs`` timed epochs
alternate between the backends (dali, torchvision, dali, ...) so that drift of the machine
hits both alike. Per epoch: images/s (wall clock, consuming every batch on the training
device), CPU seconds per image (this process and all its children, from /proc), and the
peak PSS of the process tree (sampled every 0.2 s; PSS shares pages between the DataLoader's
forked workers fairly, where RSS would count them once per worker). Also measured on the
same data, device and threads: the decode floor (a DALI pipeline that only reads and
decodes) and the statistics pass. Reported: medians (min–max) and the DALI/torchvision
ratio of medians.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from dalinorm.config import Config

log = logging.getLogger(__name__)

__all__ = ["BenchResult", "EpochSample", "format_table", "run_bench", "summarize"]

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# ---------------------------------------------------------------------- /proc accounting
def process_tree(root: int | None = None) -> list[int]:
    """``root`` and all its descendants (the DataLoader's workers among them)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of ``pids`` (from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def parse_pss_kib(smaps_rollup: str) -> int:
    """The ``Pss:`` line of /proc/<pid>/smaps_rollup, in KiB."""
    for line in smaps_rollup.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tree_pss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                total += parse_pss_kib(handle.read()) * 1024
        except OSError:
            continue
    return total


class PeakSampler:
    """Samples the process tree's PSS in a thread; ``peak`` since the last ``reset``."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peak = tree_pss_bytes(process_tree())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, tree_pss_bytes(process_tree()))


# ---------------------------------------------------------------------- arithmetic
@dataclass
class EpochSample:
    images: int
    seconds: float
    cpu_seconds: float
    peak_pss: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_image(self) -> float:
        return 1000.0 * self.cpu_seconds / self.images if self.images else float("nan")


@dataclass
class BenchResult:
    name: str
    samples: list[EpochSample] = field(default_factory=list)

    def summary(self) -> dict:
        return summarize([s.images_per_s for s in self.samples]) | {
            "cpu_ms_per_image": statistics.median(s.cpu_ms_per_image for s in self.samples),
            "peak_pss_mib": max(s.peak_pss for s in self.samples) / 2**20,
            "images_per_epoch": self.samples[0].images,
        }


def summarize(rates: list[float]) -> dict:
    """Median and range of per-epoch images/s."""
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "epochs": len(rates)}


def ratio(a: dict, b: dict) -> float:
    """a/b of the medians."""
    return a["median"] / b["median"]


# ---------------------------------------------------------------------- measuring
def _time_epoch(batches: Callable[[], Iterable], to_device: Callable, sampler: PeakSampler) -> EpochSample:
    import torch

    sampler.reset()
    cpu0 = cpu_seconds(process_tree())
    start = time.perf_counter()
    images = 0
    for x, _ in batches():
        x = to_device(x)
        images += x.shape[0]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cpu = cpu_seconds(process_tree()) - cpu0
    return EpochSample(images, seconds, cpu, sampler.peak)


def decode_floor(cfg: Config, split: str, device_id: int | None, epochs: int) -> BenchResult:
    """A pipeline that only reads and decodes the same files: the ceiling for any path."""
    from dalinorm.pipelines.files import usable_listing
    from dalinorm.pipelines.graphs import GraphSpec, build_decode_pipeline, run_batches

    listing, _ = usable_listing(cfg, split)
    spec = GraphSpec.for_block(listing, 0, len(listing), device_id=device_id, seed=0)
    pipe = build_decode_pipeline(cfg, spec)
    pipe.build()
    batches = -(-len(listing) // cfg.loader.batch_size)

    def one_epoch() -> None:
        for _ in run_batches(pipe, batches):
            pass

    return _repeat("decode floor", len(listing), one_epoch, epochs)


def stats_pass(cfg: Config, epochs: int) -> BenchResult:
    from dalinorm.pipelines.files import usable_listing
    from dalinorm.stats.compute import ShardReducer

    listing, _ = usable_listing(cfg, "train")
    reducer = ShardReducer(cfg, listing)  # built once: the steady state, like the floor
    return _repeat("stats pass", len(listing), reducer.reduce, epochs)


def _repeat(name: str, images: int, one_epoch: Callable[[], object], epochs: int) -> BenchResult:
    """Time ``one_epoch`` over ``images`` images ``epochs`` times, after one warm-up run."""
    result = BenchResult(name)
    with PeakSampler() as sampler:
        for epoch in range(epochs + 1):
            sampler.reset()
            cpu0 = cpu_seconds(process_tree())
            start = time.perf_counter()
            one_epoch()
            sample = EpochSample(images, time.perf_counter() - start,
                                 cpu_seconds(process_tree()) - cpu0, sampler.peak)
            if epoch:  # the first is warm-up
                result.samples.append(sample)
    return result


def run_bench(
    cfg: Config,
    *,
    split: str = "train",
    backends: tuple[str, ...] = ("dali", "torchvision"),
    epochs: int = 3,
    warmup: int = 1,
    workers: int | None = None,
    with_floor: bool = True,
    with_stats: bool = True,
    memory_epochs: int = 0,
) -> dict:
    """Measure and return a JSON-able report (see the module docstring for the method)."""
    import torch

    from dalinorm.integration.loader import DaliLoader
    from dalinorm.integration.reference import reference_loader

    workers = (os.cpu_count() or 1) if workers is None else workers
    loaders = {}
    if "dali" in backends:
        loaders["dali"] = DaliLoader(cfg, split)
    if "torchvision" in backends:
        loaders["torchvision"] = reference_loader(cfg, split, num_workers=workers)
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")

    def to_device(x):
        return x.to(device, non_blocking=True)

    results = {name: BenchResult(name) for name in loaders}
    with PeakSampler() as sampler:
        for name, loader in loaders.items():
            for _ in range(warmup):
                _time_epoch(lambda: loader, to_device, sampler)
        for epoch in range(epochs):
            for name, loader in loaders.items():
                sample = _time_epoch(lambda: loader, to_device, sampler)
                results[name].samples.append(sample)
                log.info("epoch %d %s: %.0f images/s", epoch + 1, name, sample.images_per_s)
    report = {
        "config": str(cfg.source_path),
        "split": split,
        "format": cfg.data.format,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cores": os.cpu_count(),
        "batch_size": cfg.loader.batch_size,
        "dali_threads": cfg.loader.num_threads,
        "torchvision_workers": workers,
        "results": {name: r.summary() for name, r in results.items()},
    }
    device_id = getattr(loaders.get("dali"), "device_id", None)
    loaders.clear()
    if with_floor:
        report["results"]["decode floor"] = decode_floor(cfg, split, device_id, epochs).summary()
    if with_stats:
        report["results"]["stats pass"] = stats_pass(cfg, epochs).summary()
    if memory_epochs:
        report["memory"] = {name: memory_profile(cfg, split, name, memory_epochs, workers)
                            for name in backends}
    res = report["results"]
    if "dali" in res and "torchvision" in res:
        report["dali_over_torchvision"] = ratio(res["dali"], res["torchvision"])
    if "decode floor" in res:
        for name in ("dali", "torchvision", "stats pass"):
            if name in res:
                res[name]["fraction_of_decode_floor"] = ratio(res[name], res["decode floor"])
    return report


def _memory_child(cfg: Config, split: str, backend: str, epochs: int, workers: int, queue) -> None:
    """In a fresh process: one loader alone, ``epochs`` epochs, PSS of the tree after each."""
    try:
        if backend == "dali":
            from dalinorm.integration.loader import DaliLoader

            loader = DaliLoader(cfg, split)
        else:
            from dalinorm.integration.reference import reference_loader

            loader = reference_loader(cfg, split, num_workers=workers)
        after = []
        with PeakSampler() as sampler:
            sampler.reset()
            for _ in range(epochs):
                for _ in loader:
                    pass
                after.append(tree_pss_bytes(process_tree()) / 2**20)
            peak = sampler.peak / 2**20
        queue.put({"peak_pss_mib": peak, "pss_after_epoch_mib": after})
    except BaseException as err:  # reported by the parent
        queue.put({"error": f"{type(err).__name__}: {err}"})


def memory_profile(cfg: Config, split: str, backend: str, epochs: int, workers: int) -> dict:
    """Peak PSS and PSS growth of one backend measured alone, in a fresh process (so the
    other loader's memory and the parent's imports do not count), over ``epochs`` epochs."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_memory_child, args=(cfg, split, backend, epochs, workers, queue))
    child.start()
    result = queue.get()
    child.join()
    if "error" in result:
        raise RuntimeError(f"memory profile of {backend}: {result['error']}")
    after = result["pss_after_epoch_mib"]
    if len(after) >= 2:
        result["growth_epoch2_to_last"] = after[-1] / after[1] - 1
    return result


def format_table(report: dict) -> str:
    lines = [
        f"{report['split']} split ({report.get('format', 'imagefolder')}), device {report['device']}, {report['cores']} cores, batch "
        f"{report['batch_size']}, DALI threads {report['dali_threads']}, torchvision workers "
        f"{report['torchvision_workers']}",
        f"{'path':<14}{'img/s median':>13}{'(min-max)':>17}{'CPU ms/img':>12}{'peak PSS MiB':>14}{'of floor':>10}",
    ]
    for name, r in report["results"].items():
        frac = r.get("fraction_of_decode_floor")
        spread = f"({r['min']:.0f}-{r['max']:.0f})"
        lines.append(
            f"{name:<14}{r['median']:>13.0f}{spread:>17}"
            f"{r['cpu_ms_per_image']:>12.2f}{r['peak_pss_mib']:>14.0f}"
            f"{(f'{frac:.0%}' if frac is not None else ''):>10}"
        )
    if "dali_over_torchvision" in report:
        lines.append(f"DALI / torchvision (medians): {report['dali_over_torchvision']:.2f}x")
    for name, mem in report.get("memory", {}).items():
        growth = mem.get("growth_epoch2_to_last")
        lines.append(
            f"memory, {name} alone in a fresh process: peak PSS {mem['peak_pss_mib']:.0f} MiB"
            + (f", PSS epoch 2 -> {len(mem['pss_after_epoch_mib'])}: {growth:+.1%}" if growth is not None else "")
        )
    return "\n".join(lines)


def write_report(path: Path, report: dict) -> None:
    from dalinorm.stats.file import write_atomically

    write_atomically(Path(path), (json.dumps(report, indent=2) + "\n").encode())
