"""DALI's stock graphs for a config: what a DALI user writes without dalinorm, for ``bench``.

They follow DALI's own ResNet-50 example (``docs/examples/use_cases/pytorch/resnet50``):

- train: ``decoders.image_random_crop`` (the ROI decode, ``num_attempts=100``) →
  ``resize(resize_x=size, resize_y=size, INTERP_TRIANGULAR)`` → ``crop_mirror_normalize``
  with a random mirror;
- eval: ``decoders.image`` → ``resize(resize_shorter=S, INTERP_TRIANGULAR)`` →
  ``crop_mirror_normalize(crop=(crop, crop))`` (DALI's centre anchor).

Same files, reader, batch size, threads, prefetch depth, random-crop ranges, flip
probability, normalization, dtype and layout as dalinorm's graphs, so the difference in
speed is what dalinorm's exactness costs (torchvision's geometry per sample, Pillow's
fixed-point resize). The output is not torchvision's: DALI rounds the resized long side and
the crop anchor its own way and resizes in one float pass (docs/PARITY.md).
"""

from __future__ import annotations

from dalinorm.config import Config
from dalinorm.pipelines.normalize import Normalization, normalize_images
from dalinorm.pipelines.readers import read_encoded
from dalinorm.pipelines.specs import GraphSpec, import_dali, new_pipeline

__all__ = ["build_stock_eval_pipeline", "build_stock_train_pipeline"]


def build_stock_train_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """The RN50 example's training graph, with the config's crop ranges and flip."""
    fn, types, _ = import_dali()
    pipe = new_pipeline(cfg, spec)
    with pipe:
        jpegs, labels = read_encoded(spec, shuffle=True)
        images = fn.decoders.image_random_crop(
            jpegs, device=spec.decode_device, output_type=types.RGB,
            random_area=list(cfg.train.scale), random_aspect_ratio=list(cfg.train.ratio),
            num_attempts=100, adjust_orientation=cfg.data.exif == "apply",
        )
        size = cfg.train.size
        images = fn.resize(images, resize_x=size, resize_y=size, interp_type=types.INTERP_TRIANGULAR)
        mirror = fn.random.coin_flip(probability=cfg.train.hflip)
        images = normalize_images(images, cfg, normalization, size=(size, size), mirror=mirror)
        pipe.set_outputs(images, labels if spec.device_id is None else labels.gpu())
    return pipe


def build_stock_eval_pipeline(cfg: Config, spec: GraphSpec, normalization: Normalization):
    """The RN50 example's validation graph: resize the shorter side, DALI's centre crop."""
    fn, types, _ = import_dali()
    pipe = new_pipeline(cfg, spec)
    with pipe:
        jpegs, labels = read_encoded(spec, shuffle=False)
        images = fn.decoders.image(jpegs, device=spec.decode_device, output_type=types.RGB,
                                   adjust_orientation=cfg.data.exif == "apply")
        images = fn.resize(images, resize_shorter=cfg.eval.resize_shorter,
                           interp_type=types.INTERP_TRIANGULAR)
        crop = cfg.eval.crop
        images = normalize_images(images, cfg, normalization, crop=(crop, crop))
        pipe.set_outputs(images, labels if spec.device_id is None else labels.gpu())
    return pipe
