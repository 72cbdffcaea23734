"""The DALI graphs: train (fused random-crop decode → resize → normalize), eval (decode →
resize shorter side → center crop → normalize), decode only, and the stats pass's
reductions; one definition for both devices (:mod:`dalinorm.pipelines.specs`)."""

from __future__ import annotations

from dalinorm.config import Config
from dalinorm.pipelines.arrays import (
    build_array_decode_pipeline,
    build_array_eval_pipeline,
    build_array_train_pipeline,
)
from dalinorm.pipelines.augment import (augment_images, erase_images, fuses_normalization,
                                        needs_conditionals, uses_augmentation)
from dalinorm.pipelines.kinds import decode_kind_args, to_data_channels
from dalinorm.pipelines.normalize import (Normalization, dali_mean_std, fused_normalize_args,
                                          normalize_images)
from dalinorm.pipelines.readers import labels_on_device, read_encoded
from dalinorm.pipelines.resize import eval_window, exact_resize, resize_images
from dalinorm.pipelines.specs import (GraphSpec, decoder_args, import_dali,
                                      new_conditional_pipeline, new_pipeline)
from dalinorm.pipelines.train_size import train_extent

__all__ = [
    "build_decode_pipeline",
    "build_eval_pipeline",
    "build_stats_pipeline",
    "build_train_pipeline",
    "decode_in_order",
]


def build_train_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """torchvision's RandomResizedCrop + RandomHorizontalFlip + Normalize as one DALI graph.

    Files: the reader reshuffles the whole list every epoch (``shuffle_after_epoch``) and each
    shard takes its block of that order, so shards are disjoint and the order is global.
    Padding the last batch keeps every epoch aligned to the start of the list (without it, the
    reader carries leftover samples into the next epoch and shards overlap; see docs). A pack:
    this rank's tars through a shuffle buffer (``data.shuffle_buffer``) seeded per rank.
    """
    if cfg.data.reads_arrays:
        return build_array_train_pipeline(cfg, spec, normalization)
    if needs_conditionals(cfg, "cpu" if spec.device_id is None else "gpu"):
        # the policies select an operation per sample with DALI's conditionals
        return new_conditional_pipeline(cfg, spec, _train_graph, cfg, spec, normalization)
    pipe = new_pipeline(cfg, spec)
    with pipe:
        pipe.set_outputs(*_train_graph(cfg, spec, normalization))
    return pipe


def _train_graph(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """The train graph's (images, labels); defined in this file for AutoGraph (conditionals)."""
    fn, types, _ = import_dali()
    jpegs, labels = read_encoded(spec, shuffle=True)
    images = fn.decoders.image_random_crop(
        jpegs,
        **decoder_args(cfg, spec),
        **decode_kind_args(cfg),
        random_area=list(cfg.train.scale),
        random_aspect_ratio=list(cfg.train.ratio),
        num_attempts=10,
        adjust_orientation=cfg.data.exif == "apply",
    )
    images = to_data_channels(images, cfg, on_gpu=spec.device_id is not None)
    # train.size, or this iteration's size of train.size_schedule (fed at run time)
    out_h, out_w = train_extent(cfg, spec)
    # augmentations work on the uint8 image: the fused resize+normalize gives way to them
    augmented = uses_augmentation(cfg)
    fused = cfg.output.dtype == "float32" and normalization.fusable and not augmented
    erase = cfg.train.random_erase.probability > 0
    # the CPU with a policy: resize, flip, policy, normalize and erase in one numba operator
    # (which has no percentile clip, per-image moments or background mask: those take the
    # paths below)
    train_step = (augmented and exact_resize(cfg, spec) and cfg.output.dtype == "float32"
                  and normalization.fusable and not normalization.clipped
                  and fuses_normalization(cfg, images.device))
    if train_step:
        mean, std = dali_mean_std(normalization)
        layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
        mirror = fn.random.coin_flip(probability=cfg.train.hflip)
        images = augment_images(images, cfg, normalize=(mean, std, layout, mirror),
                                resize=(out_h, out_w, cfg.train.interpolation), erase=erase)
        erase = False  # done
    elif exact_resize(cfg, spec) and fused:
        # resize, mirror and normalize in one pass over the output (the CPU's hot path; a
        # percentile clip too); per_image and keep_background take the path below: the same
        # exact resize, then their own operators
        from dalinorm.pipelines.resample import pil_resize_numba

        mirror = fn.random.coin_flip(probability=cfg.train.hflip)
        layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
        images = pil_resize_numba(images, out_h=out_h, out_w=out_w,
                                  normalize=fused_normalize_args(normalization, layout, mirror),
                                  interpolation=cfg.train.interpolation)
    else:
        # outside AutoGraph: it would rewrite the numba kernels of the exact resize
        images = _not_converted(resize_images)(cfg, spec, images,
                                               interpolation=cfg.train.interpolation,
                                               out_h=out_h, out_w=out_w)
        mirror = fn.random.coin_flip(probability=cfg.train.hflip)
        flip = {"mirror": mirror}
        if augmented:
            # torchvision's order: crop, flip, then jitter and the policy (on uint8 HWC)
            images = augment_images(fn.flip(images, horizontal=mirror), cfg)
            flip = {}
        images = normalize_images(images, cfg, normalization, size=(out_h, out_w), **flip)
    if erase:
        images = erase_images(images, cfg)  # after normalization, as torchvision's recipe
    return images, labels_on_device(labels, spec)


def _not_converted(func):
    """``func`` as AutoGraph leaves it (DALI's ``do_not_convert``), for code that must run as
    written inside a conditional pipeline's graph."""
    from nvidia.dali.pipeline import do_not_convert

    return do_not_convert(func)


def decode_in_order(cfg: Config, spec: GraphSpec, *, eval_geometry: bool, normalize=None):
    """Read ``spec.files`` in order and decode them (uint8 RGB), optionally resized and
    center-cropped as torchvision's eval recipe does (float32, normalized in the same pass,
    with ``normalize``: see :func:`~dalinorm.pipelines.resize.resize_images`). Call inside
    ``with pipe:``."""
    fn, types, _ = import_dali()
    exif = cfg.data.exif == "apply"
    # in the given order, each rank its own block (files: handed over by the caller; a pack:
    # DALI's reader sharding, see GraphSpec.for_rank)
    jpegs, labels = read_encoded(spec, shuffle=False)
    images = to_data_channels(fn.decoders.image(
        jpegs, **decoder_args(cfg, spec), **decode_kind_args(cfg), adjust_orientation=exif
    ), cfg, on_gpu=spec.device_id is not None)
    if eval_geometry:
        images = eval_window(jpegs, images, cfg, spec, exif, normalize)
    return images, labels


def build_decode_pipeline(cfg: Config, spec: GraphSpec):
    """Read and decode only (uint8 RGB, the images as stored): the decode floor of ``bench``."""
    if cfg.data.reads_arrays:
        return build_array_decode_pipeline(cfg, spec)
    pipe = new_pipeline(cfg, spec)
    with pipe:
        images, _ = decode_in_order(cfg, spec, eval_geometry=False)
        pipe.set_outputs(images)
    return pipe


def build_eval_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """torchvision's Resize(resize_shorter) + CenterCrop(crop) + Normalize as one DALI graph."""
    if cfg.data.reads_arrays:
        return build_array_eval_pipeline(cfg, spec, normalization)
    pipe = new_pipeline(cfg, spec)
    with pipe:
        fused = cfg.output.dtype == "float32" and normalization.fusable
        if exact_resize(cfg, spec) and fused:
            # the window's resize and normalization in one pass (the CPU's hot path, as in
            # train): 0.12 ms of crop_mirror_normalize per image replaced by ≈0.06
            layout = "CHW" if cfg.output.layout == "NCHW" else "HWC"
            images, labels = decode_in_order(
                cfg, spec, eval_geometry=True,
                normalize=fused_normalize_args(normalization, layout, None))
        else:
            images, labels = decode_in_order(cfg, spec, eval_geometry=True)
            images = normalize_images(images, cfg, normalization, size=(cfg.eval.crop,) * 2)
        pipe.set_outputs(images, labels_on_device(labels, spec))
    return pipe


def build_stats_pipeline(cfg: Config, spec: GraphSpec, *, reducer: str = "sums",
                         with_images: bool = False):
    """Per-image, per-channel exact moments inside the graph, for the statistics pass.

    Outputs per image: the reduction of :func:`dalinorm.pipelines.reductions.reduce_images`
    (a [C, 256] or [C, 65536] histogram, or Σx, Σx² and the shape); with ``with_images`` the
    integer image itself comes last (host-side histograms on the GPU). ``stats.resolution: eval`` reduces
    the image the network sees (torchvision's resize + center crop, before normalization)
    instead of the decoded one.
    """
    from dalinorm.pipelines.reductions import reduce_images

    fn, types, _ = import_dali()
    pipe = new_pipeline(cfg, spec)
    with pipe:
        images, _ = decode_in_order(cfg, spec, eval_geometry=cfg.stats.resolution == "eval")
        if cfg.data.dtype == "uint16" and cfg.stats.resolution == "eval":
            # the 16-bit eval resize is in float (resize_images): the levels the network sees,
            # rounded to the nearest integer level for the exact reductions
            images = fn.cast(images, dtype=types.UINT16)
        outputs = reduce_images(images, reducer, channels=cfg.data.channels, dtype=cfg.data.dtype,
                                background=cfg.stats.background_levels(cfg.data.channels))
        if with_images:
            outputs.append(images)
        pipe.set_outputs(*outputs)
    return pipe
