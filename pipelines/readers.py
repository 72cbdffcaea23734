"""Readers: the encoded images and their labels, from files or from a pack's tar shards."""

from __future__ import annotations

from dalinorm.data.packs import PACK_IMAGE_EXTENSIONS
from dalinorm.pipelines.specs import GraphSpec, import_dali

__all__ = ["READER_NAME", "labels_on_device", "parse_cls", "read_encoded"]

# The readers' name in every graph (for DALI's per-reader metadata); DALI's own iterator finds the reader by it.
READER_NAME = "dalinorm_reader"



def labels_on_device(labels, spec: GraphSpec):
    """int64 scalar labels from :func:`read_encoded`, on the images' device."""
    return labels if spec.device_id is None else labels.gpu()


def parse_cls(cls):
    """A webdataset ``.cls`` member (ASCII decimal digits, up to 8) → int64 scalar label.

    Stock operators only, so the same graph runs on both devices: pad the digits on the right
    with '0' to 8, take their place-value sum, then divide out the padding (10^(8 - length)).
    """
    import numpy as np

    fn, types, _ = import_dali()
    digits = fn.cast(fn.pad(cls, axes=[0], shape=[8], fill_value=ord("0")), dtype=types.INT64) - ord("0")
    places = types.Constant(np.array([10 ** k for k in range(7, -1, -1)], dtype=np.int64))
    value = fn.reductions.sum(digits * places, axes=[0])
    length = fn.cast(cls.shape()[0], dtype=types.INT32)
    padding = fn.lookup_table(length, keys=list(range(1, 9)),
                              values=[float(10 ** (8 - k)) for k in range(1, 9)],
                              dtype=types.INT64, default_value=0)
    return value // padding


def read_encoded(spec: GraphSpec, *, shuffle: bool):
    """(encoded images, int64 scalar labels) from files or a pack's tars. Every epoch is the
    whole list or shard (the last batch padded with repeats, which callers drop or count), so
    epochs stay aligned. ``shuffle``: files are reshuffled globally every epoch (sharded by
    DALI), unless ``spec.in_order``; a pack's samples pass through a seeded shuffle buffer (each
    training pipeline reads its own tars)."""
    fn, types, _ = import_dali()
    if spec.tars:
        encoded, cls = fn.readers.webdataset(
            paths=list(spec.tars), index_paths=list(spec.indexes), ext=[";".join(PACK_IMAGE_EXTENSIONS), "cls"],
            missing_component_behavior="error", pad_last_batch=True, random_shuffle=shuffle,
            initial_fill=spec.shuffle_buffer, shard_id=spec.shard_id, num_shards=spec.num_shards,
            stick_to_shard=True, name=READER_NAME,
        )
        return encoded, parse_cls(cls)
    # spec.in_order: the loader's sampler ordered this epoch's files for this rank already
    extra = dict(shard_id=spec.shard_id, num_shards=spec.num_shards,
                 shuffle_after_epoch=True) if shuffle and not spec.in_order else {}
    encoded, labels = fn.readers.file(files=list(spec.files), labels=list(spec.labels),
                                      pad_last_batch=True, name=READER_NAME, **extra)
    return encoded, fn.cast(fn.squeeze(labels, axes=[0]), dtype=types.INT64)
