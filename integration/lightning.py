"""``DaliDataModule``: a PyTorch Lightning ``LightningDataModule`` over :class:`DaliLoader`.

    from lightning import Trainer
    from dalinorm import load_config
    from dalinorm.integration.lightning import DaliDataModule

    Trainer(max_epochs=90, strategy="ddp", devices=8).fit(model, datamodule=DaliDataModule(
        load_config("configs/imagenet_resnet50.yaml")))

What Lightning does with it, and why nothing needs to be passed to the ``Trainer``:

- No sampler is injected. Lightning only re-wraps ``torch.utils.data.DataLoader`` objects
  (``use_distributed_sampler``); the loaders here are plain iterables, which Lightning leaves
  as they are, so the default ``Trainer(use_distributed_sampler=True)`` is fine.
- Each rank reads its own shard: ``setup`` builds the loaders on every rank with
  ``trainer.global_rank`` / ``trainer.world_size`` (the DDP process group Lightning started),
  decoding on ``trainer.strategy.root_device`` unless ``loader.device: cpu``.
- Resume: ``state_dict`` (called by Lightning when it writes a checkpoint, on every rank)
  gathers the train loader's position of every rank; ``load_state_dict`` gives each rank its
  own, so ``trainer.fit(..., ckpt_path=...)`` continues with the batch that came next, also
  from a checkpoint taken in the middle of an epoch.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

from dalinorm.config import Config, load_config
from dalinorm.errors import MissingDependencyError, UsageError
from dalinorm.integration.loader import DaliLoader

try:
    from lightning.pytorch import LightningDataModule
except ModuleNotFoundError as err:  # pragma: no cover - the extra is installed for the tests
    if (err.name or "").split(".", 1)[0] != "lightning":
        raise
    raise MissingDependencyError("lightning", "dalinorm.integration.lightning") from None

log = logging.getLogger(__name__)

__all__ = ["DaliDataModule"]

_STATE_VERSION = 1


class _TrainerLoader:
    """What the ``Trainer`` iterates: one epoch of a :class:`DaliLoader` per ``iter()``.

    One thing differs from iterating the loader directly: the epoch starts at the first batch
    asked for, not at ``iter()``. Lightning calls ``iter()`` once just to check that the object
    is iterable, which would otherwise count an epoch. (Lightning stops after ``len()`` batches
    without asking for another; ``DaliLoader`` reads its padding before the last batch, so a
    checkpoint at the end of an epoch resumes into the next one.)
    """

    def __init__(self, loader: DaliLoader, module: "DaliDataModule | None" = None) -> None:
        self.loader = loader
        self._module = module  # the train loader's position is the data module's state

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple["torch.Tensor", "torch.Tensor"]]:  # noqa: F821
        return self._epoch()

    def _epoch(self):
        yield from self.loader

    # Lightning's fit loop saves the state of a train loader that has these two methods and
    # warns on a mid-epoch resume when it has not. The position itself lives in the data
    # module's checkpoint entry, gathered from every rank (the loop's entry is rank 0's only).
    def state_dict(self) -> dict:
        return {"held_by": "DaliDataModule.state_dict()"} if self._module is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self._module is not None and not self._module._restored:
            log.warning("DaliDataModule: the checkpoint has no data module state, so the train "
                        "loader starts a fresh epoch; pass datamodule= to trainer.fit to resume it")

    def __repr__(self) -> str:
        return f"_TrainerLoader({self.loader!r})"


class DaliDataModule(LightningDataModule):
    """Train and val :class:`DaliLoader` s of ``cfg`` for a Lightning ``Trainer``.

    ``cfg``: a :class:`~dalinorm.Config`, or the path of a YAML config. ``setup("fit")`` builds
    both loaders on this rank, ``setup("validate")`` the val loader; there is no test or predict
    split. Loaders are built once and kept, so the train loader's epochs and position carry over
    from one ``fit`` to the next with the same data module.
    """

    def __init__(self, cfg: Config | str | os.PathLike) -> None:
        super().__init__()
        self.cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
        self.train_loader: DaliLoader | None = None
        self.val_loader: DaliLoader | None = None
        self._pending_state: dict | None = None  # loaded before the train loader was built
        self._restored = False

    # ------------------------------------------------------------------ building
    def _placement(self) -> dict[str, Any]:
        """rank, world_size and device of this process, from the trainer when there is one
        (else DaliLoader's own defaults: torch.distributed, LOCAL_RANK)."""
        trainer = self.trainer
        if trainer is None:
            return {}
        placement: dict[str, Any] = {"rank": trainer.global_rank, "world_size": trainer.world_size}
        if self.cfg.loader.device != "cpu":
            placement["device"] = trainer.strategy.root_device  # the GPU this rank trains on
        return placement

    def _loader(self, current: DaliLoader | None, split: str) -> DaliLoader:
        placement = self._placement()
        if current is not None and all(getattr(current, key) == value for key, value in placement.items()
                                       if key != "device"):
            return current
        return DaliLoader(self.cfg, split, **placement)

    def setup(self, stage: str) -> None:
        """Build the loaders ``stage`` needs on this rank (Lightning calls it on every rank)."""
        if stage not in ("fit", "validate"):
            raise UsageError("DaliDataModule.setup()", f"stage {stage!r} has no split here; expected "
                             "'fit' (train and val loaders) or 'validate' (val loader)")
        if stage == "fit":
            self.train_loader = self._loader(self.train_loader, "train")
            if self._pending_state is not None:
                self._apply(self._pending_state)
                self._pending_state = None
        self.val_loader = self._loader(self.val_loader, "val")

    def train_dataloader(self) -> _TrainerLoader:
        if self.train_loader is None:
            raise UsageError("train_dataloader()", "call setup('fit') first (the Trainer does)")
        return _TrainerLoader(self.train_loader, self)

    def val_dataloader(self) -> _TrainerLoader:
        if self.val_loader is None:
            raise UsageError("val_dataloader()", "call setup('fit') or setup('validate') first "
                             "(the Trainer does)")
        return _TrainerLoader(self.val_loader)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, in label order (after ``setup``)."""
        loader = self.train_loader or self.val_loader
        if loader is None:
            raise UsageError("DaliDataModule.classes", "call setup('fit') or setup('validate') first")
        return loader.classes

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Every rank's train loader position (``DaliLoader.state_dict``), gathered to each rank.

        Lightning calls this on every rank when it writes a checkpoint and saves rank 0's
        result, so the states of all ranks are gathered here. Empty before the train loader
        exists (a checkpoint then holds no data module entry).
        """
        if self.train_loader is None:
            return dict(self._pending_state or {})
        own = self.train_loader.state_dict()
        states = [own]
        if self.train_loader.world_size > 1:
            import torch.distributed as dist

            if not (dist.is_available() and dist.is_initialized()):
                raise UsageError("DaliDataModule.state_dict()", f"the train loader has "
                                 f"{self.train_loader.world_size} ranks but no process group is "
                                 "initialized to gather their positions")
            states = [None] * self.train_loader.world_size
            dist.all_gather_object(states, own)
        return {"version": _STATE_VERSION, "train": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the train loader where the checkpoint's run stood (this rank's entry)."""
        if not state_dict:
            return
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("train"), list):
            raise UsageError("DaliDataModule.load_state_dict()", "not a DaliDataModule.state_dict() "
                             "(no 'train' list of loader states)")
        self._restored = True
        if self.train_loader is None:
            self._pending_state = state_dict  # applied when setup('fit') builds the loader
            return
        self._apply(state_dict)

    def _apply(self, state_dict: dict[str, Any]) -> None:
        loader = self.train_loader
        states = state_dict["train"]
        if len(states) != loader.world_size:
            raise UsageError("loader state", f"the checkpoint holds {len(states)} ranks' positions "
                             f"but this run has {loader.world_size} ranks; resume with the same ranks")
        loader.load_state_dict(states[loader.rank])

    def __repr__(self) -> str:
        return f"DaliDataModule(train={self.train_loader!r}, val={self.val_loader!r})"
