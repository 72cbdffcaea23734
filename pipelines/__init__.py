"""The DALI graphs: readers, decode, resize, normalize and the in-graph reductions, one
definition for both devices; and what runs them (the prefetch loop, DALI's errors translated).

This room builds on the data listing (:mod:`dalinorm.data`) and knows nothing of the stats
file: the mean/std it applies arrive as a :class:`Normalization`.
"""

from dalinorm.pipelines.graphs import (
    build_decode_pipeline,
    build_eval_pipeline,
    build_stats_pipeline,
    build_train_pipeline,
)
from dalinorm.pipelines.normalize import Normalization
from dalinorm.pipelines.run import PipelineError
from dalinorm.pipelines.specs import GraphSpec
from dalinorm.pipelines.usable import usable_listing

__all__ = [
    "GraphSpec",
    "Normalization",
    "PipelineError",
    "build_decode_pipeline",
    "build_eval_pipeline",
    "build_stats_pipeline",
    "build_train_pipeline",
    "usable_listing",
]
