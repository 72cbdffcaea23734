"""``DaliLoader``: what a PyTorch training loop iterates instead of a ``DataLoader``.

It runs the DALI pipeline itself (no DALI iterator, no ``data[0]["images"]`` dictionaries)
and gives the contract of a torchvision ``DataLoader``: ``for images, labels in loader``, a new
epoch each time it is iterated, ``len(loader)`` batches per epoch.

Sharding, and what each rank yields (world_size 3, 23 images, batch 4)::

    split  policy                       rank 0        rank 1        rank 2
    train  drop_last=True (default)     1 batch of 4  1 batch of 4  1 batch of 4
    train  drop_last=False              2 batches (the last one filled up with repeats of
                                        the shard's last image, as DistributedSampler does)
    val    always exact                 7 images:     8 images:     8 images:
                                        4 + 3         4 + 4         4 + 4

Train shards are blocks of one global permutation that is redrawn every epoch, so the ranks
are disjoint within an epoch and every image moves between ranks across epochs. Eval shards
are contiguous blocks of torchvision's file order: concatenated by rank they are exactly
``ImageFolder``'s order, every image once, no padding, never an empty batch.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator

from dalinorm.config import Config
from dalinorm.data.listing import SplitListing
from dalinorm.data.repeated_augment import ra_epoch_indices, ra_samples_per_rank
from dalinorm.errors import ConfigError, DatasetError, UsageError
from dalinorm.pipelines.device import distributed_rank_world, resolve_device_id
from dalinorm.pipelines.graphs import build_eval_pipeline, build_train_pipeline
from dalinorm.pipelines.normalize import Normalization
from dalinorm.pipelines.run import (
    explain_pipeline_error,
    padded_shard_batches,
    pipeline_batches,
    prefetch_depth,
)
from dalinorm.pipelines.specs import GraphSpec
from dalinorm.pipelines.usable import usable_listing
from dalinorm.stats.normalization import resolve_normalization

log = logging.getLogger(__name__)

__all__ = ["DaliLoader"]

_SEED_STRIDE = 1_000_003  # decorrelates the random augmentations of different ranks
_EPOCH_SEED_STRIDE = 7_919  # and of the epochs of repeated augmentation (a pipeline per epoch)


def _permutation(n: int, seed: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(seed).permutation(n).tolist()


class DaliLoader:
    """Iterate ``(images, labels)`` batches of a split through a DALI pipeline.

    ``images``: float32/float16 tensor of shape [N, C, H, W] on the pipeline's device (CUDA
    when decoding on the GPU, else CPU); with ``output.layout: NHWC`` its memory is NHWC
    (``torch.channels_last``: a view of DALI's HWC output, no copy), which is what a model
    after ``.to(memory_format=torch.channels_last)`` takes. ``labels``: int64 tensor of shape
    [N], on the same device. Iterating again starts the next epoch; train epochs are fresh
    global shuffles, reproducible from ``loader.seed``; eval order is torchvision
    ``ImageFolder``'s.

    ``device``: which GPU decodes (``3``, ``"cuda:3"``, a ``torch.device``), or ``"cpu"``.
    Without it: ``LOCAL_RANK`` when a launcher set it (torchrun: one GPU per rank, also when
    ``torch.cuda.set_device`` was not called; a warning when the current device differs),
    else ``torch.cuda.current_device()``. ``loader.device: cpu`` always decodes on the CPU.

    Per epoch: ``train.size_schedule`` sets each epoch's crop size (:attr:`size`; fed to the
    one pipeline at run time), ``loader.repeated_augment: K`` reads each epoch in torchvision's
    ``RASampler`` order (:mod:`dalinorm.data.repeated_augment`) with a pipeline of its own.
    """

    def __init__(
        self,
        cfg: Config,
        split: str = "train",
        *,
        rank: int | None = None,
        world_size: int | None = None,
        device: "int | str | torch.device | None" = None,  # noqa: F821
    ) -> None:
        if split not in ("train", "val"):
            raise UsageError("split", f"expected 'train' or 'val', got {split!r}")
        self.cfg = cfg
        self.split = split
        self.training = split == "train"
        self.rank, self.world_size = distributed_rank_world(rank, world_size)
        self.listing: SplitListing
        self.listing, self.skipped_files = usable_listing(cfg, split)
        self.normalization: Normalization = resolve_normalization(cfg)
        self.device_id = resolve_device_id(cfg.loader.device, requested=device)
        self.batch_size = cfg.loader.batch_size
        self.drop_last = cfg.loader.drop_last if self.training else False
        # progressive resizing and repeated augmentation are the train split's
        self.size_schedule = cfg.train.size_schedule if self.training else None
        self.repeated_augment = cfg.loader.repeated_augment if self.training else 1
        n = len(self.listing)
        if self.repeated_augment > 1:
            self._check_repeated_augment(n)
        if self.listing.packed and self.training:
            self.listing.tar_block(0, self.world_size)  # names the problem if tars < ranks
        if n < self.world_size:
            raise DatasetError(
                f"data.{split}: {n} images cannot be sharded across {self.world_size} ranks "
                "(every rank needs at least one)"
            )
        self._batches, self.epoch_size = self._epoch_geometry(n)
        if self.training and self._batches == 0 and self.repeated_augment > 1:
            raise ConfigError(
                "loader.batch_size",
                f"{self.batch_size} is larger than the {ra_samples_per_rank(n, self.world_size)} "
                "samples per rank of an epoch of repeated augmentation, so drop_last leaves no "
                "batch; lower it or set loader.drop_last: false",
            )
        if self.training and self._batches == 0:
            smallest = min(self._train_counts) if self.listing.packed else n // self.world_size
            raise ConfigError(
                "loader.batch_size",
                f"{self.batch_size} is larger than the {smallest} training images of the smallest "
                "rank, so drop_last leaves no batch; lower it or set loader.drop_last: false",
            )
        self._pipeline_epoch = 1  # repeated augmentation: the epoch the pipeline reads
        self._ahead: tuple | None = None  # repeated augmentation: (epoch, pipeline, feed) built early
        self._pipeline = self._build_pipeline()
        self._feed: _PipelineFeed | None = None
        self._initial_checkpoint: str | None = None  # what the pipeline was restored from
        self._epoch = 0  # epochs started
        self._consumed = 0  # pipeline batches read in the current epoch
        self._resuming = False
        log.info(
            "DaliLoader(%s): %d images, rank %d/%d, %d batches of %d per epoch, normalization %s",
            split, n, self.rank, self.world_size, self._batches, self.batch_size,
            self.normalization.origin,
        )

    # ------------------------------------------------------------------ geometry
    def _epoch_geometry(self, n: int) -> tuple[int, int]:
        """(batches per epoch, samples per epoch) on this rank; also sets how many batches the
        pipeline itself produces per epoch and how many samples of the last one are real."""
        bs = self.batch_size
        if self.repeated_augment > 1:
            # RASampler's epoch: the same number of samples on every rank; the pipeline reads
            # only what this rank yields (drop_last: full batches only)
            selected = ra_samples_per_rank(n, self.world_size)
            batches = selected // bs if self.drop_last else math.ceil(selected / bs)
            self._pipeline_batches = batches
            self._ra_reads = batches * bs if self.drop_last else selected
            self._last_size = bs if self.drop_last else selected - (batches - 1) * bs
            return batches, self._ra_reads
        if self.training and self.listing.packed:
            return self._packed_train_geometry()
        if self.training:
            # The reader pads every shard to the batch count of the largest shard, so each
            # epoch starts aligned at the head of the (reshuffled) list on every rank.
            self._pipeline_batches = padded_shard_batches(n, self.world_size, bs)
            if self.drop_last:
                batches = (n // self.world_size) // bs  # the smallest shard decides, for all ranks
                self._last_size = bs
                return batches, batches * bs
            if self.world_size > 1:
                # equal steps on every rank: short shards end with repeats of their last image
                self._last_size = bs
                return self._pipeline_batches, self._pipeline_batches * bs
            self._last_size = n - (self._pipeline_batches - 1) * bs
            return self._pipeline_batches, n
        start, end = self.listing.rank_block(self.rank, self.world_size)
        self._pipeline_batches = pipeline_batches(self.listing, self.rank, self.world_size, bs)
        batches = math.ceil((end - start) / bs)
        self._last_size = (end - start) - (batches - 1) * bs
        return batches, end - start

    def _packed_train_geometry(self) -> tuple[int, int]:
        """A pack is split at shard granularity, so ranks can hold different image counts; the
        rank with the fewest decides every rank's steps. Each rank's pipeline reads its own
        tars (a padded last batch), and what lies beyond the common step count is not read in
        that epoch: a different remainder every epoch, since the shuffle buffer reorders."""
        bs, world = self.batch_size, self.world_size
        counts = [b - a for a, b in (self.listing.tar_block(r, world) for r in range(world))]
        own = counts[self.rank]
        self._pipeline_batches = math.ceil(own / bs)
        if self.drop_last:
            batches = min(counts) // bs
        elif world > 1:
            batches = math.ceil(min(counts) / bs)  # the shortest rank's last batch is padded
        else:
            batches = self._pipeline_batches
        self._last_size = bs if (self.drop_last or world > 1) else own - (batches - 1) * bs
        self._train_counts = counts
        if world > 1 and self.rank == 0 and max(counts) > batches * bs:
            log.warning(
                "DaliLoader(train): the pack's %d tar shards give ranks %d to %d images; with equal "
                "steps (%d batches of %d) up to %d images per rank are decoded but not delivered "
                "each epoch (a different subset every epoch). Re-pack with --num-shards a multiple "
                "of the world size to remove the gap (docs/FORMATS.md)",
                len(self.listing.shards), min(counts), max(counts), batches, bs,
                max(counts) - batches * bs)
        samples = batches * bs if (self.drop_last or world > 1) else own
        return batches, samples

    def _check_repeated_augment(self, n: int) -> None:
        key, k = "loader.repeated_augment", self.repeated_augment
        if self.listing.packed:
            raise ConfigError(key, f"{k} needs images read in a chosen order (data.format "
                              "imagefolder or file_list); a webdataset pack is read tar by tar")
        if ra_samples_per_rank(n, self.world_size) == 0:
            raise ConfigError(key, f"{k} repeats: torchvision's RASampler keeps n // 256 * 256 / "
                              f"world_size samples per rank and epoch, 0 for {n} images on "
                              f"{self.world_size} rank(s); it needs at least 256 images")

    def _train_sizes(self, epoch: int | None = None):
        """The size of each pipeline iteration's crops under train.size_schedule (None without
        one): ``epoch`` (1-based) for a pipeline of one epoch, else the epoch the iteration
        falls in (the pipeline yields _pipeline_batches per epoch, from the first)."""
        schedule = self.size_schedule
        if schedule is None:
            return None
        if epoch is not None:
            size = schedule.size_at(epoch - 1)
            return lambda iteration: size
        per_epoch = self._pipeline_batches
        return lambda iteration: schedule.size_at(iteration // per_epoch)

    def _build_pipeline(self, checkpoint: str | None = None):
        n = len(self.listing)
        if self.repeated_augment > 1:
            return self._build_ra_pipeline(self._pipeline_epoch, checkpoint)
        sizes = self._train_sizes()
        if self.training and self.listing.packed:
            start, end = self.listing.tar_block(self.rank, self.world_size)
            spec = GraphSpec.for_block(
                self.listing, start, end,
                device_id=self.device_id,
                seed=(self.cfg.loader.seed + _SEED_STRIDE * self.rank) % 2**31,
                shuffle_buffer=self.cfg.data.shuffle_buffer,
                checkpoint=checkpoint,
                checkpointing=True,
                train_sizes=sizes,
            )
            return build_train_pipeline(self.cfg, spec, self.normalization)
        if self.training:
            files = [str(f) for f in self.listing.files]
            labels = list(self.listing.labels)
            # DALI's per-epoch shuffle uses a fixed seed of its own; permuting the list first
            # with loader.seed (the same on every rank) makes the order depend on the seed.
            order = _permutation(n, self.cfg.loader.seed)
            spec = GraphSpec(
                files=[files[i] for i in order],
                labels=[labels[i] for i in order],
                device_id=self.device_id,
                seed=(self.cfg.loader.seed + _SEED_STRIDE * self.rank) % 2**31,
                shard_id=self.rank,
                num_shards=self.world_size,
                checkpoint=checkpoint,
                checkpointing=True,
                train_sizes=sizes,
            )
            return build_train_pipeline(self.cfg, spec, self.normalization)
        spec = GraphSpec.for_rank(self.listing, self.rank, self.world_size,
                                  device_id=self.device_id, seed=self.cfg.loader.seed)
        return build_eval_pipeline(self.cfg, spec, self.normalization)

    def _build_ra_pipeline(self, epoch: int, checkpoint: str | None):
        """A pipeline for one epoch (1-based) of repeated augmentation: this rank's RASampler
        indices of that epoch, read in order. A new one per epoch (the numba operators are
        compiled once per process, not per pipeline); augmentations seeded per rank and epoch."""
        seed = self.cfg.loader.seed
        order = ra_epoch_indices(len(self.listing), repetitions=self.repeated_augment,
                                 world_size=self.world_size, rank=self.rank, seed=seed,
                                 epoch=epoch - 1)[: self._ra_reads]
        files, labels = self.listing.files, self.listing.labels
        spec = GraphSpec(
            files=[str(files[i]) for i in order],
            labels=[labels[i] for i in order],
            device_id=self.device_id,
            seed=(seed + _SEED_STRIDE * self.rank + _EPOCH_SEED_STRIDE * epoch) % 2**31,
            in_order=True,
            checkpoint=checkpoint,
            checkpointing=True,
            train_sizes=self._train_sizes(epoch),
        )
        return build_train_pipeline(self.cfg, spec, self.normalization)

    # ------------------------------------------------------------------ iteration
    def __len__(self) -> int:
        return self._batches

    @property
    def epoch(self) -> int:
        """The number of epochs started so far."""
        return self._epoch

    @property
    def size(self) -> int:
        """The training crops' size in the epoch being read (:attr:`epoch`; the first before
        any): ``train.size``, or ``train.size_schedule``'s. Eval: ``eval.crop``."""
        if not self.training:
            return self.cfg.eval.crop
        return self.size_at(max(self._epoch, 1))

    def size_at(self, epoch: int) -> int:
        """The training size of 1-based ``epoch`` (FFCV's schedule counts from 0: epoch - 1)."""
        if self.size_schedule is None:
            return self.cfg.train.size
        return self.size_schedule.size_at(epoch - 1)

    @property
    def device(self) -> str:
        return "cpu" if self.device_id is None else f"cuda:{self.device_id}"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.listing.classes

    def __iter__(self) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:  # noqa: F821
        if self._pipeline is None:
            raise UsageError("DaliLoader", "this loader was closed; build a new one to iterate again")
        if self._consumed == self._pipeline_batches:
            self._consumed = 0  # the previous epoch was read to its end
        if self._consumed and not self._resuming:
            self._leave_unfinished_epoch()
        if not self._resuming:
            self._epoch += 1
        self._resuming = False
        if self.repeated_augment > 1 and self._pipeline_epoch != self._epoch:
            # repeated augmentation: each epoch reads its own order (RASampler's), its own pipeline
            self._feed = None
            self._pipeline_epoch = self._epoch
            if self._ahead is not None and self._ahead[0] == self._epoch and self._ahead[1]:
                # built and prefetching since the previous epoch's last run was scheduled
                _, self._pipeline, self._feed = self._ahead
            else:
                self._pipeline = self._build_pipeline()
            self._ahead = None
        if self._feed is None:
            # a pipeline of one epoch (repeated augmentation) runs no further than its end:
            # nothing decoded past it only to be thrown away with the pipeline
            runs = (self._pipeline_batches - self._consumed) if self.repeated_augment > 1 else None
            self._feed = _PipelineFeed(self._pipeline, self.device_id, self.listing,
                                       channels_last=self.cfg.output.layout == "NHWC", runs=runs)
        return self._epoch_batches()

    def _leave_unfinished_epoch(self) -> None:
        """The previous epoch was left early (a ``break``): go to the next epoch's start.

        Eval epochs are all the same (the files in order, from the first), so a fresh pipeline
        starts there and nothing is decoded to catch up. A train epoch's successor depends on
        where the reader's reshuffle and the augmentation RNGs stand at its end, which only
        running the pipeline gets to: the rest is decoded and discarded, said at INFO.
        """
        left = self._pipeline_batches - self._consumed
        if not self.training:
            log.info("DaliLoader(%s): epoch left after %d of %d batches; restarting at the first "
                     "file with a fresh pipeline (nothing decoded to catch up)",
                     self.split, self._consumed, self._pipeline_batches)
            self._feed = None
            self._pipeline = self._build_pipeline()
            self._feed = _PipelineFeed(self._pipeline, self.device_id, self.listing,
                                       channels_last=self.cfg.output.layout == "NHWC")
        elif self.repeated_augment > 1:
            log.info("DaliLoader(%s): epoch left after %d of %d batches; the next epoch reads its "
                     "own order with a pipeline of its own (nothing decoded to catch up)",
                     self.split, self._consumed, self._pipeline_batches)
        else:
            log.info("DaliLoader(%s): epoch left after %d of %d batches; decoding and discarding "
                     "the remaining %d batches so that the next epoch is the one an uninterrupted "
                     "run gets (its order and augmentations follow from this one's end)",
                     self.split, self._consumed, self._pipeline_batches, left)
            while self._consumed < self._pipeline_batches:
                self._feed.next()
                self._consumed += 1
        self._consumed = 0

    def _epoch_batches(self):
        # The pipeline yields exactly _pipeline_batches full batches per epoch (the reader pads
        # the last one); this rank's real batches are the first _batches of them. The epoch is
        # counted here because DALI's reader-linked iterator leaves a batch of padding behind
        # with padded, rotating shards, which then opens the next epoch (DALI 2.4).
        while self._consumed < self._pipeline_batches:
            index = self._consumed
            images, labels = self._feed.next()
            self._consumed += 1
            if self.repeated_augment > 1 and self._ahead is None and self._feed.all_scheduled:
                self._build_ahead()
            if index >= self._batches:
                continue  # padding beyond this rank's last step
            if index == self._batches - 1:
                if self._last_size < self.batch_size:
                    images, labels = images[: self._last_size], labels[: self._last_size]
                # read the padding now, so that the epoch is complete once its last batch is
                # out: a loop that stops after len() batches without asking for another
                # (Lightning's) then saves a state at the epoch's end, not one that resumes
                # into an empty epoch
                while self._consumed < self._pipeline_batches:
                    self._feed.next()
                    self._consumed += 1
            yield images, labels

    def _policy_train_step(self) -> bool:
        """Whether this loader's train graph has a policy on the CPU (whose graph changed with
        state version 2)."""
        return (self.training and self.device_id is None
                and self.cfg.train.auto_augment.policy != "none")

    def _build_ahead(self) -> None:
        """Repeated augmentation: the current epoch's last run is scheduled, so build the next
        epoch's pipeline now (in this ``next()``, on the caller's thread) and let it prefetch:
        the build overlaps the current pipeline's last runs, and the new pipeline's first
        batches decode while this epoch ends. Built at the next ``iter()``, the build and the
        first batch ran with nothing to overlap: 80-100 ms of wall time per epoch on 2 cores,
        7% of an epoch of 1,792 images. The pipeline is the one ``iter()`` would build (its
        order and seeds depend on the epoch only), so nothing else changes. After the last
        epoch one pipeline is built for nothing; ``close()`` releases it. If the build fails,
        ``iter()`` builds again and raises there, at the epoch it belongs to."""
        epoch = self._pipeline_epoch + 1
        try:
            pipe = self._build_ra_pipeline(epoch, None)
            feed = _PipelineFeed(pipe, self.device_id, self.listing,
                                 channels_last=self.cfg.output.layout == "NHWC",
                                 runs=self._pipeline_batches)
        except Exception as err:  # noqa: BLE001 - raised again, in its own epoch, by iter()
            log.debug("DaliLoader(%s): building epoch %d's pipeline early failed (%s); iter() "
                      "builds it", self.split, epoch, err)
            self._ahead = (epoch, None, None)
            return
        self._ahead = (epoch, pipe, feed)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        """Where this loader stands: save it with the model checkpoint.

        Holds the epoch, the batches read of it, and DALI's pipeline checkpoint (reader
        position, shuffle and augmentation RNG states) as of the last batch handed out.
        """
        if not self.training:
            raise UsageError("state_dict()", f"the {self.split!r} loader has no position to save (eval "
                             "always starts at its first file); save the train loader's state")
        if self._feed is None:
            # nothing read since the pipeline was built: it is still in its initial state
            checkpoint = self._initial_checkpoint
        else:
            checkpoint = self._pipeline.checkpoint()
        return {
            # 2: the CPU train step with a policy is one operator (another graph, other draws)
            "version": 2,
            "epoch": self._epoch,
            "batches_read": self._consumed,
            "dali_checkpoint": checkpoint,
            "rank": self.rank,
            "world_size": self.world_size,
            "seed": self.cfg.loader.seed,
            "fingerprint": self.listing.fingerprint(),
            "format": self.cfg.data.format,
            "pack": self.listing.pack_id,  # the reader's position means nothing in another layout
            "repeated_augment": self.repeated_augment,  # another order per epoch
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from :meth:`state_dict`): the next iteration yields exactly
        the batches the interrupted run would have yielded next."""
        missing = [k for k in ("dali_checkpoint", "epoch", "batches_read")
                   if not isinstance(state, dict) or k not in state]
        if missing:
            raise UsageError("load_state_dict()", f"not a DaliLoader.state_dict() (no {', '.join(missing)})")
        if state.get("version", 1) < 2 and self._policy_train_step():
            raise UsageError("load_state_dict()", "this state was saved by an older dalinorm, whose "
                             "CPU train graph with train.auto_augment drew other random streams "
                             "from the same seed; it cannot be resumed exactly: start the epoch "
                             "again (states without a CPU policy still load)")
        expected = {"rank": self.rank, "world_size": self.world_size, "seed": self.cfg.loader.seed,
                    "fingerprint": self.listing.fingerprint(), "format": self.cfg.data.format,
                    "pack": self.listing.pack_id, "repeated_augment": self.repeated_augment}
        # states written before these keys existed
        written_before_packs = {"format": "imagefolder", "pack": "", "repeated_augment": 1}
        for key, value in expected.items():
            saved = state.get(key, written_before_packs.get(key))
            if saved != value:
                raise UsageError("loader state", f"{key} is {saved!r} in the checkpoint but {value!r} "
                                 "here; resume with the same data, layout, seed and ranks")
        self._feed = None
        self._ahead = None
        self._pipeline_epoch = max(state["epoch"], 1)  # repeated augmentation: whose order
        self._pipeline = self._build_pipeline(checkpoint=state["dali_checkpoint"])
        self._initial_checkpoint = state["dali_checkpoint"]
        self._feed = None
        self._epoch = state["epoch"]
        self._consumed = state["batches_read"]
        # the next __iter__ continues this epoch, unless it was read to its end
        self._resuming = 0 < self._consumed < self._pipeline_batches

    def close(self) -> None:
        """Release the pipeline's threads and memory now rather than at garbage collection."""
        self._feed = None
        self._ahead = None
        self._pipeline = None

    def __repr__(self) -> str:
        return (f"DaliLoader(split={self.split!r}, images={len(self.listing)}, "
                f"batches={self._batches}, rank={self.rank}/{self.world_size}, device={self.device})")


class _PipelineFeed:
    """Runs a built pipeline with its prefetch queue kept full, batch after batch across
    epochs, and hands each batch over as torch tensors on the pipeline's device."""

    def __init__(self, pipe, device_id: int | None, listing=None, *, channels_last: bool = False,
                 runs: int | None = None) -> None:
        import torch

        self._pipe = pipe
        self._listing = listing  # names an image of a pack in errors
        self._channels_last = channels_last  # the images output is [N, H, W, C] (DALI's HWC)
        self._device = torch.device("cpu") if device_id is None else torch.device("cuda", device_id)
        self._unscheduled = runs  # runs not yet scheduled, when the pipeline has a last one
        try:
            pipe.build()
            for _ in range(prefetch_depth(pipe)):
                self._schedule()
        except RuntimeError as err:
            raise explain_pipeline_error(err, self._listing) from err

    @property
    def all_scheduled(self) -> bool:
        """Whether a pipeline with a last run (``runs``) has scheduled it."""
        return self._unscheduled is not None and self._unscheduled <= 0

    def _schedule(self) -> None:
        if self._unscheduled is None or self._unscheduled > 0:
            self._pipe.schedule_run()
            if self._unscheduled is not None:
                self._unscheduled -= 1

    def next(self):
        import torch

        try:
            outputs = self._pipe.outputs()
            self._schedule()
        except RuntimeError as err:
            raise explain_pipeline_error(err, self._listing) from err
        # No copy: the dynamic executor's outputs are buffers of their own, which DALI does not
        # reuse while a tensor holds them (DLPack, as DALI's own PyTorch iterator hands them over
        # with exec_dynamic); on 2 cores a copy into a recycled tensor cost 0.07-0.1 ms per
        # 176² float32 image, 6-8% of the whole train step
        if self._device.type == "cuda":
            with torch.cuda.device(self._device):
                tensors = [torch.from_dlpack(output.as_tensor()) for output in outputs]
        else:
            tensors = [torch.from_dlpack(output.as_tensor()) for output in outputs]
        if self._channels_last:
            # [N, H, W, C] memory seen as [N, C, H, W]: torch's channels_last format, no copy
            tensors[0] = tensors[0].permute(0, 3, 1, 2)
        return tuple(tensors)
