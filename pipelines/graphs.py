"""The DALI graphs: train (fused random-crop decode → resize → crop_mirror_normalize) and eval
(decode → resize shorter side → center crop → normalize), one definition for both devices.

The only difference between the GPU and the CPU graph is the decoder's ``device`` string:
``"mixed"`` (nvJPEG / hardware decoder, output on the GPU) or ``"cpu"``; every later operator
runs where its input lives. ``device_id=None`` makes the pipeline CPU-only.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Sequence

from dalinorm.config import Config, MissingDependencyError
from dalinorm.pipelines.files import DatasetError
from dalinorm.pipelines.normalize import Normalization, dali_mean_std

log = logging.getLogger(__name__)

__all__ = [
    "READER_NAME",
    "GraphSpec",
    "PipelineError",
    "build_decode_pipeline",
    "build_eval_pipeline",
    "build_stats_pipeline",
    "build_train_pipeline",
    "explain_pipeline_error",
    "is_file_error",
    "pipeline_batches",
    "prefetch_depth",
    "run_batches",
]

# The readers' name in every graph (for DALI's per-reader metadata); internal to dalinorm.
READER_NAME = "dalinorm_reader"


def _dali():
    try:
        from nvidia.dali import fn, math as dmath, types
        from nvidia.dali.pipeline import Pipeline
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("nvidia.dali", "dalinorm's pipelines") from err
    return fn, dmath, types, Pipeline


@dataclass(frozen=True)
class GraphSpec:
    """What a pipeline reads and how it runs, besides the config's transforms."""

    files: Sequence[str]
    labels: Sequence[int]
    device_id: int | None  # None: CPU-only pipeline
    seed: int
    shard_id: int = 0
    num_shards: int = 1
    # a webdataset pack instead of files: the tar shards this pipeline reads, their index files
    tars: Sequence[str] = ()
    indexes: Sequence[str] = ()
    shuffle_buffer: int = 1024
    # DALI checkpointing: None for a fresh pipeline, or a state from Pipeline.checkpoint()
    checkpoint: str | None = None
    checkpointing: bool = False

    @classmethod
    def for_block(cls, listing, start: int, end: int, **kwargs) -> "GraphSpec":
        """A spec reading images [start, end) of a :class:`SplitListing`: those files, or
        the whole tars that hold them (a pack's :meth:`SplitListing.tar_block`)."""
        if listing.packed:
            shards = listing.shards_in(start, end)
            return cls(files=(), labels=(), tars=[str(s.path) for s in shards],
                       indexes=[str(s.index) for s in shards], **kwargs)
        return cls(files=[str(f) for f in listing.files[start:end]],
                   labels=list(listing.labels[start:end]), **kwargs)

    @classmethod
    def for_rank(cls, listing, rank: int, world_size: int, **kwargs) -> "GraphSpec":
        """A spec reading ``rank``'s :meth:`SplitListing.rank_block` in order (eval, stats):
        those files; in a pack, every tar with DALI's reader sharding (the same blocks,
        each padded to the largest block's batch count: :func:`pipeline_batches`)."""
        if listing.packed and world_size > 1:
            return cls(files=(), labels=(), tars=[str(s.path) for s in listing.shards],
                       indexes=[str(s.index) for s in listing.shards], shard_id=rank,
                       num_shards=world_size, **kwargs)
        return cls.for_block(listing, *listing.rank_block(rank, world_size), **kwargs)

    @property
    def decode_device(self) -> str:
        return "cpu" if self.device_id is None else "mixed"


def _new_pipeline(cfg: Config, spec: GraphSpec):
    _, _, _, Pipeline = _dali()
    return Pipeline(
        batch_size=cfg.loader.batch_size,
        num_threads=cfg.loader.num_threads,
        device_id=spec.device_id,
        seed=spec.seed,
        prefetch_queue_depth=cfg.loader.prefetch,
        enable_checkpointing=spec.checkpointing or spec.checkpoint is not None,
        checkpoint=spec.checkpoint,
    )


def _decoder_args(cfg: Config, spec: GraphSpec) -> dict:
    """The decoder's device, and on the GPU its chroma upsampling (``loader.jpeg_upsampling``);
    the CPU decoder is libjpeg and always upsamples as PIL does."""
    args: dict = {"device": spec.decode_device}
    if spec.decode_device == "mixed" and cfg.loader.jpeg_upsampling == "faithful":
        args["jpeg_fancy_upsampling"] = True
    return args


def _labels(labels, spec: GraphSpec):
    """int64 scalar labels from :func:`_read`, on the images' device."""
    return labels if spec.device_id is None else labels.gpu()


def _parse_cls(cls):
    """A webdataset ``.cls`` member (ASCII decimal digits, up to 8) → int64 scalar label.

    Stock operators only, so the same graph runs on both devices: pad the digits on the right
    with '0' to 8, take their place-value sum, then divide out the padding (10^(8 - length)).
    """
    import numpy as np

    fn, _, types, _ = _dali()
    digits = fn.cast(fn.pad(cls, axes=[0], shape=[8], fill_value=ord("0")), dtype=types.INT64) - ord("0")
    places = types.Constant(np.array([10 ** k for k in range(7, -1, -1)], dtype=np.int64))
    value = fn.reductions.sum(digits * places, axes=[0])
    length = fn.cast(cls.shape()[0], dtype=types.INT32)
    padding = fn.lookup_table(length, keys=list(range(1, 9)),
                              values=[float(10 ** (8 - k)) for k in range(1, 9)],
                              dtype=types.INT64, default_value=0)
    return value // padding


def _read(spec: GraphSpec, *, shuffle: bool):
    """(encoded images, int64 scalar labels) from files or a pack's tars. Every epoch is the
    whole list or shard (the last batch padded with repeats, which callers drop or count), so
    epochs stay aligned. ``shuffle``: files are reshuffled globally every epoch (sharded by
    DALI); a pack's samples pass through a seeded shuffle buffer (each training pipeline reads
    its own tars)."""
    fn, _, types, _ = _dali()
    if spec.tars:
        from dalinorm.pipelines.webdataset import IMAGE_EXTS

        encoded, cls = fn.readers.webdataset(
            paths=list(spec.tars), index_paths=list(spec.indexes), ext=[";".join(IMAGE_EXTS), "cls"],
            missing_component_behavior="error", pad_last_batch=True, random_shuffle=shuffle,
            initial_fill=spec.shuffle_buffer, shard_id=spec.shard_id, num_shards=spec.num_shards,
            stick_to_shard=True, name=READER_NAME,
        )
        return encoded, _parse_cls(cls)
    extra = dict(shard_id=spec.shard_id, num_shards=spec.num_shards,
                 shuffle_after_epoch=True) if shuffle else {}
    encoded, labels = fn.readers.file(files=list(spec.files), labels=list(spec.labels),
                                      pad_last_batch=True, name=READER_NAME, **extra)
    return encoded, fn.cast(fn.squeeze(labels, axes=[0]), dtype=types.INT64)


def _normalize(images, cfg: Config, normalization: Normalization, **crop_args):
    fn, _, types, _ = _dali()
    mean, std = dali_mean_std(normalization)
    return fn.crop_mirror_normalize(
        images,
        dtype=types.FLOAT16 if cfg.output.dtype == "float16" else types.FLOAT,
        output_layout="CHW" if cfg.output.layout == "NCHW" else "HWC",
        mean=mean,
        std=std,
        **crop_args,
    )


def build_train_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """torchvision's RandomResizedCrop + RandomHorizontalFlip + Normalize as one DALI graph.

    Files: the reader reshuffles the whole list every epoch (``shuffle_after_epoch``) and each
    shard takes its block of that order, so shards are disjoint and the order is global.
    Padding the last batch keeps every epoch aligned to the start of the list (without it, the
    reader carries leftover samples into the next epoch and shards overlap; see docs). A pack:
    this rank's tars through a shuffle buffer (``data.shuffle_buffer``) seeded per rank.
    """
    fn, _, types, _ = _dali()
    pipe = _new_pipeline(cfg, spec)
    with pipe:
        jpegs, labels = _read(spec, shuffle=True)
        images = fn.decoders.image_random_crop(
            jpegs,
            **_decoder_args(cfg, spec),
            output_type=types.RGB,
            random_area=list(cfg.train.scale),
            random_aspect_ratio=list(cfg.train.ratio),
            num_attempts=10,
            adjust_orientation=cfg.data.exif == "apply",
        )
        size = cfg.train.size
        if _exact_resize(cfg, spec) and cfg.output.dtype == "float32":
            # resize, mirror and normalize in one pass over the output (the CPU's hot path)
            from dalinorm.pipelines.resample import pil_resize_numba

            mirror = fn.random.coin_flip(probability=cfg.train.hflip)
            mean, std = dali_mean_std(normalization)
            layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
            images = pil_resize_numba(images, out_h=size, out_w=size,
                                      normalize=(mean, std, layout, mirror))
        else:
            images = _resize(cfg, spec, images, out_h=size, out_w=size)
            mirror = fn.random.coin_flip(probability=cfg.train.hflip)
            images = _normalize(images, cfg, normalization, mirror=mirror)
        pipe.set_outputs(images, _labels(labels, spec))
    return pipe


# PIL rounds each resampling pass to uint8 half up (fixed point plus one half). DALI's cast
# rounds float to uint8 to nearest; adding this offset first breaks exact ties (x.5) upward as
# PIL does, whatever the device's rounding mode, and moves no value more than 1e-4 from a tie.
# The simple scales that produce ties (2:1, 3:2, 5:4, 3:1) are ones where DALI's float result
# is exact to < 4e-5 at 255, so a tie does not drift below the offset. Exact ties are common:
# a 2:1 downscale weighs pixels 1/8, 3/8, 3/8, 1/8, so one output in 8 lands on .5; without the
# offset the eval residual on such images was 0.054 uint8 level instead of 0.0025
# (docs/PARITY.md).
_TIE_OFFSET = 1e-4


def _round_half_up(images):
    """float → uint8, rounding halves up like PIL's fixed-point resampler (saturating)."""
    fn, _, types, _ = _dali()
    return fn.cast(images + _TIE_OFFSET, dtype=types.UINT8)


def _exact_resize(cfg: Config, spec: GraphSpec) -> bool:
    """``loader.resize: pil`` on the CPU: Pillow's arithmetic itself (a numba operator,
    :mod:`dalinorm.pipelines.resample`). On the GPU, ``pil`` is :func:`pil_resize`."""
    return cfg.loader.resize == "pil" and spec.device_id is None


def _resize(cfg: Config, spec: GraphSpec, images, normalize=None, **window):
    """The resize ``loader.resize`` selects: ``pil`` (exact on the CPU, :func:`pil_resize` on
    the GPU), ``pil_dali`` (:func:`pil_resize` on both) or ``fast`` (:func:`fast_resize`).
    ``normalize`` (exact CPU resize only): normalize in the same pass, see
    :func:`~dalinorm.pipelines.resample.pil_resize_numba`."""
    if _exact_resize(cfg, spec):
        from dalinorm.pipelines.resample import pil_resize_numba

        fn, _, types, _ = _dali()
        geometry = None
        if window.get("full_h") is not None:
            geometry = fn.cast(fn.stack(window["full_h"], window["full_w"], window["top"],
                                        window["left"]), dtype=types.INT32)
        return pil_resize_numba(images, out_h=window["out_h"], out_w=window["out_w"],
                                geometry=geometry, normalize=normalize)
    if normalize is not None:
        raise ValueError("_resize: normalize is for the exact CPU resize only")
    return (fast_resize if cfg.loader.resize == "fast" else pil_resize)(images, **window)


def fast_resize(images, *, out_h: int, out_w: int, full_h=None, full_w=None, top=None, left=None):
    """One 2-D linear antialiased DALI resize to uint8, with :func:`pil_resize`'s arguments:
    about half the CPU cost of the PIL-order passes, ≈0.17 uint8 level from PIL on average."""
    fn, _, types, _ = _dali()
    common = dict(interp_type=types.INTERP_LINEAR, antialias=True, size=[out_h, out_w])
    if full_h is None:
        return fn.resize(images, **common)
    return fn.resize(images, roi_relative=True,
                     roi_start=fn.stack(top / full_h, left / full_w),
                     roi_end=fn.stack((top + out_h) / full_h, (left + out_w) / full_w), **common)


def pil_resize(images, *, out_h: int, out_w: int, full_h=None, full_w=None, top=None, left=None):
    """Resize uint8 HWC images the way PIL's ``Image.resize(..., BILINEAR)`` does, which is what
    torchvision's ``Resize``/``RandomResizedCrop`` (antialias) do to PIL images.

    PIL resamples in two passes, horizontal then vertical, each with a triangle filter as wide
    as the scale when shrinking, and rounds to uint8 after each pass. One 2-D DALI resize keeps
    the intermediate in float and picks its own pass order: 0.166 uint8 level mean difference
    on ImageNet-like photos. Two 1-D resizes in PIL's order, each rounded half up, bring it to
    0.0005 (docs/PARITY.md). Left over: where a shrinking filter reaches past the input's
    edge, PIL renormalizes the taps inside while DALI repeats the edge pixel, so the outermost
    output row and column can differ by up to 1/8 of the range (train windows; eval only when
    crop == resize_shorter).

    Without ``full_*`` the whole image is resized to ``out_h × out_w``. With them, the output
    is the ``out_h × out_w`` window at (``top``, ``left``) of the image resized to
    ``full_h × full_w`` (per-sample DataNodes allowed): the resize + center crop of eval, but
    only the window is computed. DALI's resize reads pixels outside the region of interest,
    so the window's values equal those of the full resize, cropped.
    """
    fn, _, types, _ = _dali()
    common = dict(
        interp_type=types.INTERP_LINEAR,
        antialias=True,
        mode="stretch",  # an extent of 0 in ``size`` stays as it is
        dtype=types.FLOAT,
    )
    if full_h is None:
        columns = fn.resize(images, size=[0, out_w], **common)
        return _round_half_up(fn.resize(_round_half_up(columns), size=[out_h, 0], **common))
    x0, x1 = left / full_w, (left + out_w) / full_w
    y0, y1 = top / full_h, (top + out_h) / full_h
    columns = fn.resize(images, size=[0, out_w], roi_relative=True,
                        roi_start=fn.stack(0.0, x0), roi_end=fn.stack(1.0, x1), **common)
    rows = fn.resize(_round_half_up(columns), size=[out_h, 0], roi_relative=True,
                     roi_start=fn.stack(y0, 0.0), roi_end=fn.stack(y1, 1.0), **common)
    return _round_half_up(rows)


def _torchvision_eval_geometry(shape, resize_shorter: int, crop: int):
    """Per-sample resize size and crop anchor (float DataNodes: new_h, new_w, top, left),
    computed the way torchvision computes them.

    ``shape`` is the encoded image's (H, W, C). torchvision's ``Resize(S)`` sets the short side
    to S and *truncates* the long side, ``int(S * long / short)``; DALI's own ``resize_shorter``
    rounds it. ``CenterCrop`` puts the anchor at ``round((size - crop) / 2)`` with Python's
    half-to-even rounding; DALI's ``crop_pos_x=0.5`` rounds half up. Integer arithmetic here
    reproduces torchvision exactly; the results are small integers, exact in float32.
    """
    fn, _, types, _ = _dali()
    h = shape[0]
    w = shape[1]
    landscape = fn.cast(h <= w, dtype=types.INT32)  # short side is H
    portrait = 1 - landscape
    s = resize_shorter
    new_h = landscape * s + portrait * ((s * h) // w)
    new_w = portrait * s + landscape * ((s * w) // h)

    def anchor(extent):
        d = extent - crop
        half = d // 2
        odd = d - 2 * half
        return half + odd * (half - 2 * (half // 2))  # round half to even

    return tuple(fn.cast(v, dtype=types.FLOAT)
                 for v in (new_h, new_w, anchor(new_h), anchor(new_w)))


def _eval_resize(jpegs, images, cfg: Config, spec: GraphSpec, exif: bool, normalize=None):
    """torchvision's Resize(resize_shorter) + CenterCrop(crop): the crop×crop uint8 window
    (float32, normalized, with ``normalize``: see :func:`_resize`)."""
    fn, _, types, _ = _dali()
    shape = fn.peek_image_shape(jpegs, adjust_orientation=exif, dtype=types.INT32)
    new_h, new_w, top, left = _torchvision_eval_geometry(
        shape, cfg.eval.resize_shorter, cfg.eval.crop
    )
    return _resize(cfg, spec, images, normalize, out_h=cfg.eval.crop, out_w=cfg.eval.crop,
                   full_h=new_h, full_w=new_w, top=top, left=left)


def _decode_in_order(cfg: Config, spec: GraphSpec, *, eval_geometry: bool, normalize=None):
    """Read ``spec.files`` in order and decode them (uint8 RGB), optionally resized and
    center-cropped as torchvision's eval recipe does. Call inside ``with pipe:``."""
    fn, _, types, _ = _dali()
    exif = cfg.data.exif == "apply"
    # in the given order, each rank its own block (files: handed over by the caller; a pack:
    # DALI's reader sharding, see GraphSpec.for_rank)
    jpegs, labels = _read(spec, shuffle=False)
    images = fn.decoders.image(
        jpegs, **_decoder_args(cfg, spec), output_type=types.RGB, adjust_orientation=exif
    )
    if eval_geometry:
        images = _eval_resize(jpegs, images, cfg, spec, exif, normalize)
    return images, labels


def build_decode_pipeline(cfg: Config, spec: GraphSpec):
    """Read and decode only (uint8 RGB, the images as stored): the decode floor of ``bench``."""
    pipe = _new_pipeline(cfg, spec)
    with pipe:
        images, _ = _decode_in_order(cfg, spec, eval_geometry=False)
        pipe.set_outputs(images)
    return pipe


def build_eval_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """torchvision's Resize(resize_shorter) + CenterCrop(crop) + Normalize as one DALI graph."""
    pipe = _new_pipeline(cfg, spec)
    with pipe:
        if _exact_resize(cfg, spec) and cfg.output.dtype == "float32":
            # the window's resize and normalization in one pass (the CPU's hot path, as in
            # train): 0.12 ms of crop_mirror_normalize per image replaced by ≈0.06
            mean, std = dali_mean_std(normalization)
            layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
            images, labels = _decode_in_order(cfg, spec, eval_geometry=True,
                                              normalize=(mean, std, layout, None))
        else:
            images, labels = _decode_in_order(cfg, spec, eval_geometry=True)
            images = _normalize(images, cfg, normalization)
        pipe.set_outputs(images, _labels(labels, spec))
    return pipe


def build_stats_pipeline(cfg: Config, spec: GraphSpec, *, reducer: str = "sums",
                         with_images: bool = False):
    """Per-image, per-channel exact moments inside the graph, for the statistics pass.

    Outputs per image: the reduction of :func:`dalinorm.pipelines.reductions.reduce_images`
    (a [3, 256] histogram, or Σx, Σx² and the shape); with ``with_images`` the uint8 image
    itself comes last (host-side histograms on the GPU). ``stats.resolution: eval`` reduces
    the image the network sees (torchvision's resize + center crop, before normalization)
    instead of the decoded one.
    """
    from dalinorm.pipelines.reductions import reduce_images

    pipe = _new_pipeline(cfg, spec)
    with pipe:
        images, _ = _decode_in_order(cfg, spec, eval_geometry=cfg.stats.resolution == "eval")
        outputs = reduce_images(images, reducer)
        if with_images:
            outputs.append(images)
        pipe.set_outputs(*outputs)
    return pipe


def pipeline_batches(listing, rank: int, world_size: int, batch_size: int) -> int:
    """Batches per epoch of a :meth:`GraphSpec.for_rank` pipeline: the rank's own block,
    or, with DALI's sharding of a pack, the largest block's (DALI pads every shard to it)."""
    if listing.packed and world_size > 1:
        return math.ceil(math.ceil(len(listing) / world_size) / batch_size)
    start, end = listing.rank_block(rank, world_size)
    return math.ceil((end - start) / batch_size)


def prefetch_depth(pipe) -> int:
    """How many runs a pipeline can have scheduled ahead (separated CPU/GPU queues: the larger)."""
    depth = pipe.prefetch_queue_depth
    return depth if isinstance(depth, int) else max(depth.values())


def run_batches(pipe, batches: int):
    """Yield the outputs of ``batches`` iterations of a built pipeline, keeping its prefetch
    queue full (``pipe.run()`` alone waits for each batch before asking for the next, so
    reading, decoding and reducing never overlap). Schedules exactly ``batches`` runs."""
    depth = prefetch_depth(pipe)
    scheduled = 0
    while scheduled < min(depth, batches):
        pipe.schedule_run()
        scheduled += 1
    for _ in range(batches):
        outputs = pipe.outputs()
        if scheduled < batches:
            pipe.schedule_run()
            scheduled += 1
        yield outputs


class PipelineError(RuntimeError):
    """A DALI pipeline failed for a reason other than a file (a build failure, out of memory,
    an operator argument): not the user's data, so not a :class:`DatasetError`."""


_FILE_IN_ERROR = re.compile(r"(?:Failed to decode sample #\d+ : |File mapping failed: |"
                            r"Could not open file |Failed to open file )(?P<path>[^\n]+?)\s*$", re.M)
# DALI names the failing operator: "Error in CPU operator `nvidia.dali.fn.decoders.image`,"
_OPERATOR_IN_ERROR = re.compile(r"Error in \w+ operator `(?:nvidia\.dali\.)?(?P<op>[\w.]+)`")
# operators whose failures are about the bytes they read (DALI names no file for some of
# them: random bytes give "nvImageCodec failure: '#4'")
_FILE_OPERATORS = ("fn.readers.", "fn.decoders.", "fn.experimental.decoders.", "fn.experimental.readers.")
# not the file's fault even inside a reader or decoder
_RESOURCE_FAILURE = re.compile(r"out of memory|bad_alloc|cudaErrorMemoryAllocation|CUDA error|"
                               r"CUDA driver|CUDA-capable", re.I)
_NOISE = ("C++ context", "File \"", "Current pipeline object is no longer valid", "Critical error in",
          "which was used in the pipeline definition", "encountered:", "Error in ")


def _meaningful_lines(text: str) -> list[str]:
    """DALI's message without its framing: pipeline traceback, C++ context, 'no longer valid'."""
    after = text.split("encountered:", 1)[1] if "encountered:" in text else text
    return [l.strip() for l in after.splitlines()
            if l.strip() and not l.strip().startswith(_NOISE) and not l.startswith("    ")]


def is_file_error(err: BaseException) -> bool:
    """Whether a DALI runtime error is about a file it read or decoded (the data's fault), as
    opposed to a pipeline that could not be built, memory, or an operator's argument."""
    text = str(err)
    if _RESOURCE_FAILURE.search(text):
        return False
    if _FILE_IN_ERROR.search(text):
        return True
    operator = _OPERATOR_IN_ERROR.search(text)
    return operator is not None and operator.group("op").startswith(_FILE_OPERATORS)


def explain_pipeline_error(err: Exception, listing=None) -> DatasetError | PipelineError:
    """A DALI runtime error as one line: a :class:`DatasetError` naming the file when the
    failure is about a file (read or decode), else a :class:`PipelineError` with the failing
    operator and DALI's first meaningful line.

    DALI names the file for decode and mapping failures ("Failed to decode sample #3 :
    /data/x.jpg"; in a pack "/packs/train/shard-000004.tar:512:000000004.jpg", which
    ``listing`` turns back into the image's original path); where it does not, the message
    says how to find the file.
    """
    text = str(err)
    if not is_file_error(err):
        lines = _meaningful_lines(text)
        operator = _OPERATOR_IN_ERROR.search(text)
        where = f" in {operator.group('op')}" if operator else ""
        hint = ("; lower loader.batch_size or loader.prefetch" if re.search(r"out of memory|bad_alloc",
                                                                           text, re.I) else "")
        return PipelineError(f"DALI pipeline failed{where} (not a file problem): "
                             f"{lines[0] if lines else type(err).__name__}{hint}")
    match = _FILE_IN_ERROR.search(text)
    lines = [l.strip() for l in text.splitlines()
             if l.strip() and "no longer valid" not in l and not l.startswith(("C++ context", "File \""))]
    detail = lines[-1] if lines else type(err).__name__
    packed = listing is not None and listing.packed
    hint = ("run `dalinorm check-data CONFIG` to list every unusable image, then re-pack from the "
            "source with data.on_bad_file: skip and check-data's --write-list" if packed else
            "run `dalinorm check-data CONFIG` to list every unusable file, then set "
            "data.on_bad_file: skip with its --write-list")
    if match:
        path = match.group("path")
        detail = detail.replace(path, "").rstrip(" :") or "decoder error"
        if packed:
            path = _describe_member(listing, path)
        return DatasetError(f"{path}: cannot be read or decoded mid-run ({detail}); {hint}")
    return DatasetError(f"a file could not be read or decoded mid-run ({detail}); {hint}")


def _describe_member(listing, source_info: str) -> str:
    """'<tar>:<data offset>:<member>' (DALI's source info in a pack) → the listing's
    description of that image, with its original path; unchanged if it is not found."""
    tar, _, rest = source_info.rpartition(".tar:")
    offset = rest.split(":", 1)[0]
    if not tar or not offset.isdigit():
        return source_info
    for shard in listing.shards:
        if str(shard.path) == tar + ".tar":
            for i in range(shard.start, shard.start + shard.count):
                if listing.offsets[i] == int(offset):
                    return listing.describe(i)
    return source_info
