"""What a DALI pipeline reads and how it runs (:class:`GraphSpec`), and the pipeline itself.

One graph definition serves both devices: the only difference between the GPU and the CPU
graph is the decoder's ``device`` string (:func:`decoder_args`): ``"mixed"`` (nvJPEG / the
hardware decoder, output on the GPU) or ``"cpu"``; every later operator runs where its input
lives. ``device_id=None`` makes the pipeline CPU-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from dalinorm.config import Config
from dalinorm.errors import MissingDependencyError

__all__ = ["GraphSpec", "decoder_args", "import_dali", "new_conditional_pipeline", "new_pipeline",
           "pipeline_kwargs"]


def import_dali():
    """(fn, types, Pipeline) of DALI, or a one-line error saying what to install."""
    try:
        from nvidia.dali import fn, types
        from nvidia.dali.pipeline import Pipeline
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("nvidia.dali", "dalinorm's pipelines") from err
    return fn, types, Pipeline


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
    # train: the size of each iteration's crops (``train.size_schedule``), fed at run time by
    # pipelines/train_size.py; None: train.size
    train_sizes: Callable[[int], int] | None = None
    # train: read ``files`` in the given order, unshuffled and unsharded (the loader's sampler
    # made this epoch's order: loader.repeated_augment)
    in_order: bool = False

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


def pipeline_kwargs(cfg: Config, spec: GraphSpec) -> dict:
    """The DALI Pipeline arguments for ``spec``: batch, threads, device, seed, prefetch,
    checkpoint, the dynamic executor."""
    return dict(
        batch_size=cfg.loader.batch_size,
        num_threads=cfg.loader.num_threads,
        device_id=spec.device_id,
        seed=spec.seed,
        prefetch_queue_depth=cfg.loader.prefetch,
        enable_checkpointing=spec.checkpointing or spec.checkpoint is not None,
        checkpoint=spec.checkpoint,
        # (DALI 2's default, said here because the loader relies on it) outputs are buffers of
        # their own that DALI does not reuse while held: DaliLoader hands them to torch uncopied
        exec_dynamic=True,
    )


def new_pipeline(cfg: Config, spec: GraphSpec):
    """An empty DALI pipeline for ``spec`` (:func:`pipeline_kwargs`)."""
    _, _, Pipeline = import_dali()
    return Pipeline(**pipeline_kwargs(cfg, spec))


def new_conditional_pipeline(cfg: Config, spec: GraphSpec, graph: Callable, *args):
    """A pipeline whose graph is ``graph(*args)`` (it returns the outputs), built with DALI's
    conditionals (``if`` on per-sample values splits the batch): ``pipeline_def(
    enable_conditionals=True)`` rewrites ``graph`` with AutoGraph, which reads its source, so
    ``graph`` must be defined in a ``.py`` file."""
    import_dali()
    from nvidia.dali import pipeline_def

    return pipeline_def(graph, enable_conditionals=True, **pipeline_kwargs(cfg, spec))(*args)


def decoder_args(cfg: Config, spec: GraphSpec) -> dict:
    """The decoder's device, and on the GPU its chroma upsampling (``loader.jpeg_upsampling``);
    the CPU decoder is libjpeg and always upsamples as PIL does."""
    args: dict = {"device": spec.decode_device}
    if spec.decode_device == "mixed" and cfg.loader.jpeg_upsampling == "faithful":
        args["jpeg_fancy_upsampling"] = True
    return args
