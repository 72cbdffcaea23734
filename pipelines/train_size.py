"""The training size inside the graph: a constant, or fed at run time per iteration
(``train.size_schedule``, progressive resizing) without rebuilding the pipeline.

A scheduled size enters the graph through one ``external_source`` that gives every sample an
int32 ``[height, width]``; each resize takes it as an argument input (DALI's ``fn.resize``
``size``) or, for the numba operators, as the shape of a zero-volume input
(:mod:`dalinorm.pipelines.resample`), so no operator is compiled again when it changes. The
source reads DALI's iteration index (``batch_info``), which a restored DALI checkpoint sets
back too: a resumed pipeline feeds the sizes the interrupted one would have.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dalinorm.config import Config
from dalinorm.pipelines.specs import GraphSpec, import_dali

__all__ = ["SizeFeed", "extent", "train_extent"]


class SizeFeed:
    """``external_source`` callback: the batch of iteration ``info.iteration``, each sample's
    int32 [size, size] from ``size_of_iteration``."""

    def __init__(self, size_of_iteration: Callable[[int], int], batch_size: int) -> None:
        self.size_of_iteration = size_of_iteration
        self.batch_size = batch_size

    def __call__(self, info) -> list[np.ndarray]:
        size = self.size_of_iteration(info.iteration)
        value = np.array([size, size], np.int32)
        return [value] * self.batch_size


def train_extent(cfg: Config, spec: GraphSpec):
    """(out_h, out_w) of the training crops: ``train.size`` twice, or, when the spec carries a
    per-iteration size (``train.size_schedule``), two int32 scalar DataNodes fed at run time."""
    if spec.train_sizes is None:
        return cfg.train.size, cfg.train.size
    fn, _, _ = import_dali()
    hw = fn.external_source(source=SizeFeed(spec.train_sizes, cfg.loader.batch_size), batch=True,
                            batch_info=True, name="dalinorm_train_size")
    return hw[0], hw[1]


def extent(*values, dtype=None):
    """``values`` as an operator argument: a list when they are all Python numbers, else one
    DataNode per sample (``fn.stack``, cast to ``dtype`` when given) for run-time sizes."""
    if all(isinstance(v, (int, float)) for v in values):
        return list(values)
    fn, _, _ = import_dali()
    stacked = fn.stack(*values)
    return stacked if dtype is None else fn.cast(stacked, dtype=dtype)
