"""DaliDataModule under a real Lightning Trainer (CPU): one epoch of the sample data, resume
from a checkpoint through the data module, and two DDP ranks reading disjoint shards."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import lightning as L  # in the test extra: a missing install fails here, it is not skipped
import pytest
import torch
import torch.nn as nn

from testkit import REPO, tensor_digest, write_textured_folder

SAMPLE = REPO / "configs" / "sample.yaml"
TRAINER = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False)


def sample_config(*overrides: str):
    from dalinorm import load_config

    return load_config(SAMPLE, overrides=["loader.device=cpu", *overrides])


class TinyModel(L.LightningModule):
    """A small conv + linear; records what each step saw, as digests (the CPU loader recycles
    its batch tensors, so nothing of a batch is kept)."""

    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(8, classes))
        self.train_seen: list[tuple[int, int, str, list[int]]] = []  # epoch, batch_idx, digest, labels
        self.val_seen: list[tuple[str, list[int]]] = []

    def training_step(self, batch, batch_idx):
        images, labels = batch
        self.train_seen.append((self.current_epoch, batch_idx, tensor_digest(images), labels.tolist()))
        return nn.functional.cross_entropy(self.net(images), labels)

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        if not self.trainer.sanity_checking:
            self.val_seen.append((tensor_digest(images), labels.tolist()))
        self.log("val_loss", nn.functional.cross_entropy(self.net(images), labels))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader_epochs(cfg, split: str, epochs: int = 1) -> list[list[tuple[str, list[int]]]]:
    """(digest, labels) of every batch of the first ``epochs`` epochs of a plain DaliLoader."""
    from dalinorm import DaliLoader

    loader = DaliLoader(cfg, split)
    out = [[(tensor_digest(x), y.tolist()) for x, y in loader] for _ in range(epochs)]
    loader.close()
    return out


@pytest.mark.slow  # trains
def test_one_epoch_of_the_sample_data():
    from dalinorm.integration.lightning import DaliDataModule

    cfg = sample_config()
    dm, model = DaliDataModule(cfg), TinyModel()
    trainer = L.Trainer(max_epochs=1, **TRAINER)
    trainer.fit(model, datamodule=dm)
    # every step of the epoch ran, on the batches a plain DaliLoader gives (no sampler, no
    # re-wrapping by Lightning), and the loader counts one epoch, not one per iter() Lightning makes
    assert len(model.train_seen) == len(dm.train_loader) == 56 // 8
    assert [(d, y) for _, _, d, y in model.train_seen] == loader_epochs(cfg, "train")[0]
    assert dm.train_loader.epoch == 1
    # validation saw every val image once, in ImageFolder order (21 images: 8 + 8 + 5)
    assert sum(len(y) for _, y in model.val_seen) == len(dm.val_loader.listing) == 21
    assert model.val_seen == loader_epochs(cfg, "val")[0]
    assert [lbl for _, y in model.val_seen for lbl in y] == list(dm.val_loader.listing.labels)


class SaveAt(L.Callback):
    """Writes a checkpoint after train batch ``batch`` of epoch 0 and at the end of epoch 0."""

    def __init__(self, folder, batch: int) -> None:
        self.folder, self.batch = folder, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 0 and batch_idx == self.batch:
            trainer.save_checkpoint(self.folder / "mid.ckpt")

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            trainer.save_checkpoint(self.folder / "end.ckpt")


@pytest.mark.slow  # trains three times
def test_resume_through_the_data_module(tmp_path):
    from dalinorm.integration.lightning import DaliDataModule

    # batch 12: 4 steps of 56 images, and the pipeline's 5th batch is padding that Lightning
    # never asks for (it stops after len() batches); the end-of-epoch checkpoint must not hold
    # an epoch left open by it
    cfg = sample_config("loader.batch_size=12")
    first = TinyModel()
    trainer = L.Trainer(max_epochs=2, callbacks=[SaveAt(tmp_path, batch=1)], **TRAINER)
    trainer.fit(first, datamodule=DaliDataModule(cfg))
    assert [(e, i) for e, i, _, _ in first.train_seen] == [(e, i) for e in (0, 1) for i in range(4)]
    assert [(d, y) for _, _, d, y in first.train_seen] == [b for ep in loader_epochs(cfg, "train", 2)
                                                           for b in ep]
    saved = torch.load(tmp_path / "mid.ckpt", weights_only=False)["DaliDataModule"]
    assert saved["train"][0]["batches_read"] == 2 and saved["train"][0]["epoch"] == 1

    # mid-epoch: the resumed run trains on exactly the batches that came after the checkpoint
    resumed = TinyModel()
    L.Trainer(max_epochs=2, **TRAINER).fit(resumed, datamodule=DaliDataModule(cfg),
                                           ckpt_path=tmp_path / "mid.ckpt")
    assert resumed.train_seen == first.train_seen[2:]

    # end of epoch: the next epoch is the second epoch of the uninterrupted run, not an empty one
    after_end = TinyModel()
    L.Trainer(max_epochs=2, **TRAINER).fit(after_end, datamodule=DaliDataModule(cfg),
                                           ckpt_path=tmp_path / "end.ckpt")
    assert after_end.train_seen == first.train_seen[4:]


def test_state_round_trips_without_a_trainer():
    """state_dict/load_state_dict of the module itself: a new module continues with the batch
    the first one would have given next."""
    from dalinorm.integration.lightning import DaliDataModule

    cfg = sample_config("loader.batch_size=12")
    dm = DaliDataModule(cfg)
    assert dm.state_dict() == {}  # nothing built yet: no checkpoint entry
    dm.setup("fit")
    batches = iter(dm.train_dataloader())
    next(batches)
    state = dm.state_dict()
    expected = next(batches)
    expected = (tensor_digest(expected[0]), expected[1].tolist())
    other = DaliDataModule(cfg)
    other.load_state_dict(state)  # before setup, as when Lightning restores before building
    other.setup("fit")
    images, labels = next(iter(other.train_dataloader()))
    assert (tensor_digest(images), labels.tolist()) == expected


def test_bad_stage_and_state_are_one_line_errors():
    from dalinorm import UsageError
    from dalinorm.integration.lightning import DaliDataModule

    dm = DaliDataModule(sample_config())
    with pytest.raises(UsageError, match=r"setup\(\): stage 'test' has no split here"):
        dm.setup("test")
    with pytest.raises(UsageError, match=r"train_dataloader\(\): call setup\('fit'\) first"):
        dm.train_dataloader()
    with pytest.raises(UsageError, match=r"not a DaliDataModule.state_dict\(\)"):
        dm.load_state_dict({"epoch": 3})
    dm.setup("validate")
    assert dm.train_loader is None and len(dm.val_dataloader()) == 3


def test_missing_lightning_says_what_to_install(monkeypatch):
    from dalinorm import MissingDependencyError

    # None in sys.modules makes `import lightning.pytorch` raise ModuleNotFoundError, as when
    # the package is not installed
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "dalinorm.integration.lightning", raising=False)
    with pytest.raises(MissingDependencyError) as err:
        importlib.import_module("dalinorm.integration.lightning")
    message = str(err.value)
    assert "\n" not in message and "pip install 'dalinorm[lightning]'" in message
    monkeypatch.delitem(sys.modules, "dalinorm.integration.lightning", raising=False)


DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch, torch.nn as nn, lightning as L
    from dalinorm import load_config
    from dalinorm.integration.lightning import DaliDataModule

    root, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = load_config(sys.argv[4], overrides=[f"data.root={root}"])

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 24))
            self.seen = {"train": [], "val": []}
        def training_step(self, batch, batch_idx):
            self.seen["train"].append([self.current_epoch, batch_idx, batch[1].tolist()])
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        def validation_step(self, batch, batch_idx):
            if not self.trainer.sanity_checking:
                self.seen["val"] += batch[1].tolist()
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class SaveMid(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if mode == "first" and trainer.current_epoch == 0 and batch_idx == 0:
                trainer.save_checkpoint(os.path.join(out, "mid.ckpt"))  # every rank calls it

    model = Model()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[SaveMid()])
    dm = DaliDataModule(cfg)
    trainer.fit(model, datamodule=dm,
                ckpt_path=os.path.join(out, "mid.ckpt") if mode == "resume" else None)
    rank = trainer.global_rank
    assert (dm.train_loader.rank, dm.train_loader.world_size) == (rank, 2)
    with open(os.path.join(out, f"{mode}_{rank}.json"), "w") as f:
        json.dump(model.seen, f)
""")


@pytest.mark.slow  # two DDP processes, twice
def test_ddp_ranks_read_disjoint_shards_and_resume(tmp_path):
    """strategy='ddp', devices=2 on the CPU (gloo): no sampler needed, each rank reads its own
    half of every epoch, validation covers the val split once, and a mid-epoch checkpoint
    resumes each rank from its own position."""
    # one class per image, so a label names its image
    write_textured_folder(tmp_path / "data", split="train", n=24, classes=24, sizes=((40, 30),))
    write_textured_folder(tmp_path / "data", split="val", n=10, classes=10, sizes=((40, 30),))
    config = tmp_path / "ddp.yaml"
    config.write_text("data: {root: .}\nloader: {batch_size: 4, num_threads: 1, device: cpu, seed: 3}\n"
                      "train: {size: 16}\neval: {resize_shorter: 16, crop: 16}\n")
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    for mode in ("first", "resume"):
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), str(tmp_path), mode,
                               str(config)], capture_output=True, text=True, timeout=400, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {(mode, rank): json.loads((tmp_path / f"{mode}_{rank}.json").read_text())
            for mode in ("first", "resume") for rank in (0, 1)}
    for epoch in (0, 1):
        shards = [[lbl for e, _, y in runs["first", r]["train"] if e == epoch for lbl in y] for r in (0, 1)]
        assert len(shards[0]) == len(shards[1]) == 12  # 24 images, 2 ranks, 3 steps of 4 each
        assert set(shards[0]).isdisjoint(shards[1]) and set(shards[0]) | set(shards[1]) == set(range(24))
    # validation: contiguous blocks of ImageFolder order, together every val image once
    val = [runs["first", r]["val"] for r in (0, 1)]  # two epochs each
    assert val[0][: len(val[0]) // 2] + val[1][: len(val[1]) // 2] == list(range(10))
    assert val[0][: len(val[0]) // 2] * 2 == val[0] and val[1][: len(val[1]) // 2] * 2 == val[1]
    for rank in (0, 1):  # each rank continues after its own first batch
        assert runs["resume", rank]["train"] == runs["first", rank]["train"][1:]
