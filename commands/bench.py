"""``dalinorm bench``: images/s of dalinorm's loader against the strongest plain baselines.

Candidates, each built once from the same config (steady state, a warm-up epoch not counted):

- ``dalinorm``: :class:`~dalinorm.integration.loader.DaliLoader` (exact: torchvision's tensors);
- ``torchvision``: the classic ``DataLoader`` (``ImageFolder`` + ``torchvision.transforms``
  ``RandomResizedCrop``/``RandomHorizontalFlip``/``ToTensor``/``Normalize``, eval
  ``Resize``/``CenterCrop``/``ToTensor``/``Normalize``, default collate, ``persistent_workers``,
  ``pin_memory`` on a GPU machine only); a config's ``train.auto_augment``, ``color_jitter``
  and ``random_erase`` run as torchvision's own transforms in its workers (TrivialAugmentWide
  after the flip, RandomErasing after Normalize, as torchvision's classification presets),
  and ``loader.repeated_augment: K`` as the sampler torchvision's references use for
  ``--ra-sampler --ra-reps K`` (RASampler's order and epoch length:
  :class:`~dalinorm.integration.samplers.RepeatedAugmentationSampler`);
- ``torchvision-v2``: the same with ``transforms.v2`` on PIL images
  (``ToImage``/``ToDtype(scale=True)``/``Normalize``), default collate;
- ``dali-stock``: DALI's stock graph for the config (:mod:`dalinorm.pipelines.stock`, DALI's
  ResNet-50 example) through DALI's own ``DALIGenericIterator``: what exactness costs.

Method: timed epochs alternate between the candidates (a, b, c, d, a, b, ...) so that drift of
the machine hits all alike. After every epoch the bench waits until the process tree is idle
(its CPU time stops growing, :func:`wait_until_idle`) before the next candidate starts, and
charges that tail (DALI's prefetch of its next epoch, a worker's shutdown) to the epoch that
caused it: an epoch runs from its first ``next()`` until its tree is idle again. Per epoch:
images/s, CPU ms per image (this process and all its children, from /proc), the tail, and
the PSS of the process tree once the tail is over (PSS shares pages between the DataLoader's
forked workers fairly; reading it during the epoch would cost every candidate ≈¼ core, and
each loader's own peak comes from ``--memory-epochs``). Reported: medians (min–max), dalinorm's speed over each
candidate's (ratio of medians, and the range of the epoch-by-epoch ratios), the fastest
candidate. Also measured on the same data, device and threads: the decode floor (a DALI
pipeline that only reads and decodes) and the statistics pass.
"""

from __future__ import annotations

import json
import logging
import os
import queue as queues
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from dalinorm.config import Config
from dalinorm.errors import UsageError

log = logging.getLogger(__name__)

__all__ = ["CANDIDATES", "BenchResult", "EpochSample", "Settled", "build_candidate", "compare",
           "fastest", "format_table", "run_bench", "summarize", "wait_until_idle"]

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
    """User + system CPU seconds of ``pids`` and of their children that have exited and
    been waited for (from /proc/<pid>/stat), so a worker that shuts down keeps counting."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: a live child is in ``pids`` itself, a reaped one
        # only in its parent's cutime/cstime, so nothing is counted twice
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def tree_cpu_seconds() -> float:
    """CPU seconds of this process tree so far (see :func:`cpu_seconds`)."""
    return cpu_seconds(process_tree())


@dataclass(frozen=True)
class Settled:
    """Where a process tree went idle: the clock and CPU readings at the last moment it was
    still working (``settled`` False: it was still busy when the wait gave up)."""

    time: float
    cpu: float
    settled: bool


def wait_until_idle(
    *,
    read_cpu: Callable[[], float] = tree_cpu_seconds,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 0.05,
    window: float = 0.3,
    busy_fraction: float = 0.1,
    max_wait: float = 10.0,
) -> Settled:
    """Poll the tree's CPU time every ``interval`` s until it grew by at most
    ``busy_fraction`` of one core over ``window`` s (the poll itself, ≈3% of a core, and
    the 10 ms clock tick stay below that), at most ``max_wait`` s.

    Returns the first reading after which the tree did no more than that noise: the tail's
    end, which the epoch is charged up to (the quiet window that proves it is not charged).
    Worked example, readings (t, cpu) every 0.1 s with window 0.3 s and 10% of a core
    (0.03 s): (0, 5.00) (0.1, 5.18) (0.2, 5.30) (0.3, 5.30) (0.4, 5.31) (0.5, 5.31): at
    t = 0.5 the reading at 0.2 s is the first within 0.03 s of the last and 0.3 s back, so
    the tail ends at (0.2, 5.30): 0.2 s and 0.30 CPU s.
    """
    noise = busy_fraction * window
    readings = [(clock(), read_cpu())]
    start = readings[0][0]
    while True:
        sleep(interval)
        now, cpu = clock(), read_cpu()
        readings.append((now, cpu))
        # CPU time never decreases: the first reading within ``noise`` of now is where the
        # work stopped; idle once that lies a whole window back
        first_quiet = next(r for r in readings if cpu - r[1] <= noise)
        if now - first_quiet[0] >= window:
            return Settled(first_quiet[0], first_quiet[1], True)
        if now - start >= max_wait:
            log.warning("bench: the process tree was still busy %.1f s after an epoch's last "
                        "batch; charging the epoch up to now", now - start)
            return Settled(now, cpu, False)


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
    """One timed epoch: ``seconds`` and ``cpu_seconds`` include the tail (the work after
    the last batch until the tree was idle), ``tail_seconds`` / ``tail_cpu_seconds`` say
    how much of them that was."""

    images: int
    seconds: float
    cpu_seconds: float
    pss: int  # of the process tree, read once the epoch's tail is over
    tail_seconds: float = 0.0
    tail_cpu_seconds: float = 0.0
    settled: bool = True

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
            "tail_ms": 1000.0 * statistics.median(s.tail_seconds for s in self.samples),
            "tail_cpu_ms": 1000.0 * statistics.median(s.tail_cpu_seconds for s in self.samples),
            "unsettled_epochs": sum(not s.settled for s in self.samples),
            "pss_mib": max(s.pss for s in self.samples) / 2**20,
            "images_per_epoch": self.samples[0].images,
        }


def summarize(rates: list[float]) -> dict:
    """Median and range of per-epoch images/s."""
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates), "epochs": len(rates)}


def ratio(a: dict, b: dict) -> float:
    """a/b of the medians."""
    return a["median"] / b["median"]


def compare(results: dict[str, BenchResult], reference: str = "dalinorm") -> dict:
    """``reference``'s speed over every other candidate's: the ratio of the medians and the
    range of the epoch-by-epoch ratios (epoch k of one against epoch k of the other, which
    ran next to each other)."""
    ref = results[reference]
    out = {}
    for name, other in results.items():
        if name == reference:
            continue
        paired = [a.images_per_s / b.images_per_s for a, b in zip(ref.samples, other.samples)]
        out[name] = {"ratio_of_medians": ratio(ref.summary(), other.summary()),
                     "paired_min": min(paired), "paired_max": max(paired)}
    return out


def fastest(summaries: dict[str, dict]) -> str:
    """The candidate with the highest median images/s."""
    return max(summaries, key=lambda name: summaries[name]["median"])


# ---------------------------------------------------------------------- measuring
def _time_epoch(batches: Iterable, to_device: Callable,
                settle: Callable[[], Settled] = wait_until_idle) -> EpochSample:
    """One epoch of ``batches``, charged until the process tree is idle after it. Call it
    on an idle tree (the previous epoch's wait sees to that). The tree's PSS is read after
    the wait: reading smaps took ≈150 ms of CPU for 5 processes of torch and DALI, so a PSS
    sampler running during the epoch would slow every candidate by a quarter of a core."""
    import torch

    cpu0 = tree_cpu_seconds()
    start = time.perf_counter()
    images = 0
    for x, _ in batches:
        x = to_device(x)
        images += x.shape[0]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    last = time.perf_counter()
    cpu_last = tree_cpu_seconds()
    end = settle()
    end_time, end_cpu = max(end.time, last), max(end.cpu, cpu_last)
    return EpochSample(images, end_time - start, end_cpu - cpu0, tree_pss_bytes(process_tree()),
                       tail_seconds=end_time - last, tail_cpu_seconds=end_cpu - cpu_last,
                       settled=end.settled)


def decode_floor(cfg: Config, split: str, device_id: int | None, epochs: int) -> BenchResult:
    """A pipeline that only reads and decodes the same files: the ceiling for any path."""
    from dalinorm.pipelines.graphs import build_decode_pipeline
    from dalinorm.pipelines.run import run_batches
    from dalinorm.pipelines.specs import GraphSpec
    from dalinorm.pipelines.usable import usable_listing

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
    from dalinorm.pipelines.usable import usable_listing
    from dalinorm.stats.compute import RankBlockReducer

    from dalinorm.stats.arrays import ArrayBlockReducer

    listing, _ = usable_listing(cfg, "train")
    block = ArrayBlockReducer if cfg.data.reads_arrays else RankBlockReducer
    reducer = block(cfg, listing)  # built once: the steady state, like the floor
    return _repeat("stats pass", len(listing), reducer.reduce, epochs)


def _repeat(name: str, images: int, one_epoch: Callable[[], object], epochs: int) -> BenchResult:
    """Time ``one_epoch`` over ``images`` images ``epochs`` times, after one warm-up run."""
    result = BenchResult(name)
    wait_until_idle()
    for epoch in range(epochs + 1):
        cpu0 = tree_cpu_seconds()
        start = time.perf_counter()
        one_epoch()
        last, cpu_last = time.perf_counter(), tree_cpu_seconds()
        end = wait_until_idle()
        end_time, end_cpu = max(end.time, last), max(end.cpu, cpu_last)
        sample = EpochSample(images, end_time - start, end_cpu - cpu0, tree_pss_bytes(process_tree()),
                             end_time - last, end_cpu - cpu_last, end.settled)
        if epoch:  # the first is warm-up
            result.samples.append(sample)
    return result


# ---------------------------------------------------------------------- candidates
CANDIDATES: dict[str, str] = {
    "dalinorm": "dalinorm DaliLoader (exact: torchvision's tensors)",
    "torchvision": "classic DataLoader: ImageFolder + transforms (v1), default collate",
    "torchvision-v2": "DataLoader: ImageFolder + transforms.v2 on PIL, default collate",
    "dali-stock": "DALI's stock graph (RN50 example) + DALIGenericIterator, not exact",
    "reference": "dalinorm's reference DataLoader (np.load or PIL + transforms.v2): the only "
                 "torchvision baseline for arrays",
}
# Candidates that read 8-bit RGB images with PIL or DALI's stock graph: for arrays (data.format
# numpy or tiff) and for grayscale or 16-bit images the torchvision ones are replaced by the
# reference DataLoader, dali-stock dropped.
_IMAGE_ONLY = ("torchvision", "torchvision-v2", "dali-stock")
# The DataLoaders' batches in flight per worker: PyTorch's default; with 2+ workers that is
# at least DALI's prefetch depth of 2, and throughput does not grow with more.
PREFETCH_FACTOR = 2


def plain_transform(cfg: Config, split: str, *, v2: bool):
    """The config's recipe as a torchvision user writes it: ``transforms`` (v1: ...,
    ``ToTensor``, ``Normalize``) or ``transforms.v2`` on PIL images (..., ``ToImage``,
    ``ToDtype(float32, scale=True)``, ``Normalize``). float32 CHW."""
    import torch

    from dalinorm.stats.normalization import resolve_normalization

    if v2:
        from torchvision.transforms import v2 as T

        to_tensor = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    else:
        import torchvision.transforms as T

        to_tensor = [T.ToTensor()]
    norm = resolve_normalization(cfg)
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    if split == "train":
        geometry = [T.RandomResizedCrop(cfg.train.size, scale=cfg.train.scale, ratio=cfg.train.ratio,
                                        interpolation=mode[cfg.train.interpolation], antialias=True),
                    T.RandomHorizontalFlip(cfg.train.hflip)]
    else:
        geometry = [T.Resize(cfg.eval.resize_shorter, interpolation=mode[cfg.eval.interpolation],
                             antialias=True), T.CenterCrop(cfg.eval.crop)]
    # train.auto_augment / color_jitter / random_erase: torchvision's own transforms, where its
    # classification presets put them (the reference path's, integration/reference.py)
    from dalinorm.integration.reference import reference_augmentations

    before, after = reference_augmentations(cfg) if split == "train" else ([], [])
    return T.Compose([*geometry, *before, *to_tensor,
                      T.Normalize(mean=list(norm.mean), std=list(norm.std)), *after])


def plain_dataloader(cfg: Config, split: str, *, workers: int, v2: bool):
    """A plain torchvision ``DataLoader`` over the split (the same files as dalinorm):
    ``ImageFolder`` with its default PIL loader, :func:`plain_transform`, default collate,
    ``persistent_workers``, ``pin_memory`` only when a GPU is there to pin for."""
    import torch
    from torchvision.datasets import ImageFolder

    from dalinorm.integration.reference import ListedImages, open_rgb
    from dalinorm.pipelines.usable import usable_listing

    from dalinorm.integration.samplers import RepeatedAugmentationSampler

    listing, _ = usable_listing(cfg, split)
    transform = plain_transform(cfg, split, v2=v2)
    exif = cfg.data.exif == "apply"
    if cfg.data.format == "imagefolder":
        usable = {str(f) for f in listing.files}
        extra = {"loader": open_rgb(True)} if exif else {}  # else torchvision's own loader
        dataset = ImageFolder(str(cfg.split_dir(split)), transform=transform,
                              is_valid_file=usable.__contains__, **extra)
    else:  # a file list or a pack: the listing's sources, member by member
        dataset = ListedImages(listing, transform, open_rgb(exif))
    training = split == "train"
    sampler = None
    if training and cfg.loader.repeated_augment > 1:
        # torchvision's references: RASampler(dataset, shuffle=True, repetitions=K), one rank
        sampler = RepeatedAugmentationSampler(len(dataset), repetitions=cfg.loader.repeated_augment,
                                              seed=cfg.loader.seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.loader.batch_size, shuffle=training and sampler is None,
        sampler=sampler,
        drop_last=cfg.loader.drop_last if training else False, num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(cfg.loader.seed),
    )


class StockDaliLoader:
    """DALI's stock graph for the config (:mod:`dalinorm.pipelines.stock`) behind DALI's
    own ``DALIGenericIterator`` (reader-linked, one shard), yielding ``(images, labels)``."""

    def __init__(self, cfg: Config, split: str, device_id: int | None) -> None:
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        from dalinorm.pipelines.readers import READER_NAME
        from dalinorm.pipelines.specs import GraphSpec
        from dalinorm.pipelines.stock import (
            build_stock_eval_pipeline,
            build_stock_train_pipeline,
        )
        from dalinorm.pipelines.usable import usable_listing
        from dalinorm.stats.normalization import resolve_normalization

        listing, _ = usable_listing(cfg, split)
        spec = GraphSpec.for_block(listing, 0, len(listing), device_id=device_id, seed=cfg.loader.seed)
        training = split == "train"
        build = build_stock_train_pipeline if training else build_stock_eval_pipeline
        pipe = build(cfg, spec, resolve_normalization(cfg))
        drop = training and cfg.loader.drop_last
        self._iterator = DALIGenericIterator(
            pipe, ["images", "labels"], reader_name=READER_NAME, auto_reset=True,
            last_batch_policy=LastBatchPolicy.DROP if drop else LastBatchPolicy.PARTIAL,
        )

    def __iter__(self):
        for data in self._iterator:
            yield data[0]["images"], data[0]["labels"]


def build_candidate(name: str, cfg: Config, split: str, *, workers: int,
                    device_id: int | None = None):
    """The loader ``name`` (a key of :data:`CANDIDATES`) for ``split``: iterating it is
    one epoch of ``(images, labels)`` batches."""
    if name == "dalinorm":
        from dalinorm.integration.loader import DaliLoader

        return DaliLoader(cfg, split)
    if name in ("torchvision", "torchvision-v2"):
        return plain_dataloader(cfg, split, workers=workers, v2=name == "torchvision-v2")
    if name == "dali-stock":
        return StockDaliLoader(cfg, split, device_id)
    if name == "reference":
        from dalinorm.integration.reference import reference_loader

        return reference_loader(cfg, split, num_workers=workers)
    raise UsageError("candidates", f"{name!r} is not a bench candidate; expected one of "
                                   f"{', '.join(CANDIDATES)}")


def _dali_device_id(cfg: Config) -> int | None:
    """The DALI device the stock graph decodes on: dalinorm's choice for ``loader.device``."""
    from dalinorm.pipelines.device import resolve_device_id

    return resolve_device_id(cfg.loader.device)


def run_bench(
    cfg: Config,
    *,
    split: str = "train",
    candidates: tuple[str, ...] = tuple(CANDIDATES),
    epochs: int = 3,
    warmup: int = 1,
    workers: int | None = None,
    with_floor: bool = True,
    with_stats: bool = True,
    memory_epochs: int = 0,
    settle: Callable[[], Settled] = wait_until_idle,
) -> dict:
    """Measure and return a JSON-able report (see the module docstring for the method)."""
    import torch

    for name in candidates:
        if name not in CANDIDATES:
            raise UsageError("candidates", f"{name!r} is not a bench candidate; expected one of "
                                           f"{', '.join(CANDIDATES)}")
    # grayscale or 16-bit images: the plain PIL candidates would give 8-bit RGB (PIL clips
    # 16-bit PNGs) and DALI's stock graph decodes 8-bit RGB: the reference DataLoader instead
    other_kind = (cfg.data.channels, cfg.data.dtype) != (3, "uint8")
    # normalizations and per-epoch keys the plain loaders and DALI's stock graph do not apply:
    # only the reference DataLoader (built from the same config) is a like-for-like baseline
    norm = cfg.normalize
    beyond_plain = [key for key, on in (
        ("normalize.mode " + norm.mode, norm.mode in ("per_image", "percentile")),
        ("normalize.keep_background", bool(norm.keep_background)),
        ("train.size_schedule", cfg.train.size_schedule is not None and split == "train"),
    ) if on]
    if (cfg.loader.repeated_augment > 1 and split == "train" and "dali-stock" in candidates
            and not beyond_plain):
        # the plain DataLoaders take torchvision's RASampler order; DALI's stock graph has none
        candidates = tuple(name for name in candidates if name != "dali-stock")
        log.info("bench with loader.repeated_augment: without dali-stock (DALI's stock graph "
                 "reads each image once per epoch)")
    if beyond_plain and any(name in _IMAGE_ONLY for name in candidates):
        asked = candidates
        candidates = tuple(dict.fromkeys(
            "reference" if name in _IMAGE_ONLY[:2] else name
            for name in candidates if name != "dali-stock"))
        log.info("bench with %s: candidates %s instead of %s (the plain torchvision loaders and "
                 "DALI's stock graph do not apply it)", ", ".join(beyond_plain),
                 ",".join(candidates), ",".join(asked))
    if (cfg.data.reads_arrays or other_kind) and any(name in _IMAGE_ONLY for name in candidates):
        asked = candidates
        candidates = tuple(dict.fromkeys(
            "reference" if name in _IMAGE_ONLY[:2] else name
            for name in candidates if name != "dali-stock"))
        log.info("bench on %s: candidates %s instead of %s (the plain PIL loaders and DALI's "
                 "stock graph read 8-bit RGB only)",
                 f"arrays (data.format {cfg.data.format})" if cfg.data.reads_arrays else
                 f"{cfg.data.channels}-channel {cfg.data.dtype} images", ",".join(candidates),
                 ",".join(asked))
    workers = (os.cpu_count() or 1) if workers is None else workers
    device_id = _dali_device_id(cfg)
    loaders = {name: build_candidate(name, cfg, split, workers=workers, device_id=device_id)
               for name in candidates}
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")

    def to_device(x):
        return x.to(device, non_blocking=True)

    results = {name: BenchResult(name) for name in loaders}
    # the DataLoaders fork their workers first, before DALI starts its threads
    warm = sorted(loaders, key=lambda name: name.startswith(("dalinorm", "dali-")))
    settle()
    for name in warm:
        for _ in range(warmup):
            _time_epoch(loaders[name], to_device, settle)
    for epoch in range(epochs):
        for name, loader in loaders.items():
            sample = _time_epoch(loader, to_device, settle)
            results[name].samples.append(sample)
            log.info("epoch %d %s: %.0f images/s (tail %.0f ms, %.0f CPU ms)", epoch + 1, name,
                     sample.images_per_s, 1000 * sample.tail_seconds, 1000 * sample.tail_cpu_seconds)
    report = {
        "config": str(cfg.source_path),
        "split": split,
        "format": cfg.data.format,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cores": os.cpu_count(),
        "batch_size": cfg.loader.batch_size,
        "dali_threads": cfg.loader.num_threads,
        "torchvision_workers": workers,
        "dataloader_prefetch_factor": PREFETCH_FACTOR,
        "candidates": {name: CANDIDATES[name] for name in loaders},
        "results": {name: r.summary() for name, r in results.items()},
    }
    if results:
        report["fastest"] = fastest(report["results"])
    if "dalinorm" in results and len(results) > 1:
        report["dalinorm_over"] = compare(results)
    loaders.clear()
    if with_floor:
        report["results"]["decode floor"] = decode_floor(cfg, split, device_id, epochs).summary()
    if with_stats:
        report["results"]["stats pass"] = stats_pass(cfg, epochs).summary()
    if memory_epochs:
        report["memory"] = {name: memory_profile(cfg, split, name, memory_epochs, workers)
                            for name in candidates}
    res = report["results"]
    if "decode floor" in res:
        for name, r in res.items():
            if name != "decode floor":
                r["fraction_of_decode_floor"] = ratio(r, res["decode floor"])
    return report


def _memory_child(cfg: Config, split: str, backend: str, epochs: int, workers: int, queue) -> None:
    """In a fresh process: one loader alone, ``epochs`` epochs, PSS of the tree after each."""
    try:
        loader = build_candidate(backend, cfg, split, workers=workers,
                                 device_id=_dali_device_id(cfg) if backend == "dali-stock" else None)
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
    """Peak PSS and PSS growth of one candidate measured alone, in a fresh process (so the
    other loaders' memory and the parent's imports do not count), over ``epochs`` epochs."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_memory_child, args=(cfg, split, backend, epochs, workers, queue))
    child.start()
    while True:  # the child may die without a word (killed for memory, a crash)
        try:
            result = queue.get(timeout=1.0)
            break
        except queues.Empty:
            if not child.is_alive():
                raise RuntimeError(f"memory profile of {backend}: the measuring process exited "
                                   f"with code {child.exitcode} before reporting (killed for "
                                   "memory? lower loader.batch_size or --workers)") from None
    child.join()
    if "error" in result:
        raise RuntimeError(f"memory profile of {backend}: {result['error']}")
    after = result["pss_after_epoch_mib"]
    if len(after) >= 2:
        result["growth_epoch2_to_last"] = after[-1] / after[1] - 1
    return result


def format_table(report: dict) -> str:
    """The report as a text table: one row per candidate and for the floor and stats pass."""
    lines = [
        f"{report['split']} split ({report.get('format', 'imagefolder')}), device {report['device']}, "
        f"{report['cores']} cores, batch {report['batch_size']}, DALI threads {report['dali_threads']}, "
        f"DataLoader workers {report['torchvision_workers']}",
        f"{'candidate':<16}{'img/s median':>13}{'(min-max)':>15}{'dalinorm x (range)':>21}"
        f"{'CPU ms/img':>11}{'tail ms':>9}{'PSS MiB':>9}{'of floor':>9}",
    ]
    over = report.get("dalinorm_over", {})
    for name, r in report["results"].items():
        frac = r.get("fraction_of_decode_floor")
        spread = f"({r['min']:.0f}-{r['max']:.0f})"
        versus = ""
        if name in over:
            o = over[name]
            versus = f"{o['ratio_of_medians']:.2f} ({o['paired_min']:.2f}-{o['paired_max']:.2f})"
        tail = f"{r['tail_ms']:.0f}" if "tail_ms" in r else ""
        lines.append(
            f"{name:<16}{r['median']:>13.0f}{spread:>15}{versus:>21}"
            f"{r['cpu_ms_per_image']:>11.2f}{tail:>9}{r['pss_mib']:>9.0f}"
            f"{(f'{frac:.0%}' if frac is not None else ''):>9}"
        )
    if "fastest" in report:
        lines.append(f"fastest: {report['fastest']}")
    lines.append("dalinorm x: dalinorm's median img/s over the candidate's (range: epoch by epoch); "
                 "tail: work after the last batch, charged to the epoch")
    for name, text in report.get("candidates", {}).items():
        lines.append(f"  {name}: {text}")
    for name, mem in report.get("memory", {}).items():
        growth = mem.get("growth_epoch2_to_last")
        lines.append(
            f"memory, {name} alone in a fresh process: peak PSS {mem['peak_pss_mib']:.0f} MiB"
            + (f", PSS epoch 2 -> {len(mem['pss_after_epoch_mib'])}: {growth:+.1%}" if growth is not None else "")
        )
    return "\n".join(lines)


def write_report(path: Path, report: dict) -> None:
    from dalinorm.atomic import write_atomically

    write_atomically(Path(path), (json.dumps(report, indent=2) + "\n").encode())
