"""The loader's recycled CPU output tensors: reused only when nobody else can see them."""

from __future__ import annotations

import weakref

import pytest
import torch

from dalinorm.integration import host_buffers
from dalinorm.integration.host_buffers import HostTensorPool

SHAPE = (4, 3, 64, 64)  # 196 KB of float32


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(host_buffers, "_MIN_POOLED_BYTES", 0)  # pool small test tensors too
    return HostTensorPool()


def test_a_dropped_tensor_is_reused(pool):
    first = pool.empty(SHAPE, torch.float32)
    ptr, ref = first.data_ptr(), weakref.ref(first)
    del first
    again = pool.empty(SHAPE, torch.float32)
    assert again is ref()  # the same tensor (a weak reference: freed memory may come back anyway)
    # another shape or dtype is never handed the same memory
    assert pool.empty((4, 3, 64, 65), torch.float32).data_ptr() != ptr
    assert pool.empty(SHAPE, torch.float16).data_ptr() != ptr


@pytest.mark.parametrize("holder", ["reference", "view", "detach", "numpy", "autograd", "dlpack", "list"])
def test_a_tensor_someone_holds_is_not_reused(pool, holder):
    t = pool.empty(SHAPE, torch.float32)
    t.fill_(1.0)
    ptr = t.data_ptr()
    weight = torch.ones(SHAPE[1:], requires_grad=True)
    kept = {
        "reference": lambda: t,
        "view": lambda: t.permute(0, 2, 3, 1)[:2],  # the channels_last view, the last-batch slice
        "detach": lambda: t.detach(),  # another tensor on the same storage
        "numpy": lambda: t.numpy(),
        "autograd": lambda: (t * weight).sum(),  # the graph saves t for weight's gradient
        "dlpack": lambda: torch.utils.dlpack.to_dlpack(t),
        "list": lambda: [t],
    }[holder]()
    del t
    other = pool.empty(SHAPE, torch.float32)
    assert other.data_ptr() != ptr
    other.fill_(2.0)
    if holder == "autograd":
        kept.backward()
        assert torch.equal(weight.grad, torch.full(SHAPE[1:], 4.0))  # 4 images of ones
    elif holder == "view":
        assert bool((kept == 1.0).all())


def test_the_loader_never_overwrites_a_batch_that_is_kept(colour_data, monkeypatch):
    """Through the real DaliLoader: batches kept whole, or only as views, keep their values
    over two epochs; batches dropped at once are recycled (so the saving is real)."""
    from dalinorm.integration.loader import DaliLoader
    from testkit import make_config, tensor_digest

    monkeypatch.setattr(host_buffers, "_MIN_POOLED_BYTES", 0)
    loader = DaliLoader(make_config(colour_data[0].root), "train")
    kept, digests = [], []
    for _ in range(2):
        for images, labels in loader:
            kept.append((images, labels[:2]))  # a whole batch, and a view of the labels
            digests.append((tensor_digest(images), tensor_digest(labels[:2])))
    assert [(tensor_digest(x), tensor_digest(y)) for x, y in kept] == digests
    assert len({x.data_ptr() for x, _ in kept}) == len(kept)

    views, digests = [], []
    for images, _ in loader:
        views.append(images[:, :, :3])
        digests.append(tensor_digest(images[:, :, :3]))
    assert [tensor_digest(v) for v in views] == digests

    refs = [weakref.ref(images) for images, _ in loader]
    alive = [id(r()) for r in refs if r() is not None]
    assert len(alive) > len(set(alive))  # the same (pooled) tensor came back for a later batch
