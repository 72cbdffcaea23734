"""DaliLoader hands DALI's output buffers to torch without a copy (DLPack, the dynamic
executor): a batch kept by the training loop must keep its values however long it is kept."""

from __future__ import annotations

import pytest

from testkit import DEVICES


@pytest.mark.parametrize("device", DEVICES)
def test_the_loader_never_overwrites_a_batch_that_is_kept(colour_data, device):
    """Through the real DaliLoader: batches kept whole, or only as views, keep their values
    over two epochs (DALI does not reuse a buffer a tensor still holds), each its own memory,
    and equal to what a loader that copies would have given (the same run, read at once)."""
    from dalinorm.integration.loader import DaliLoader
    from testkit import make_config, tensor_digest

    cfg = make_config(colour_data[0].root, f"loader.device={device}")
    loader = DaliLoader(cfg, "train")
    kept, digests = [], []
    for _ in range(2):
        for images, labels in loader:
            kept.append((images, labels[:2]))  # a whole batch, and a view of the labels
            digests.append((tensor_digest(images), tensor_digest(labels[:2])))
    assert len(kept) >= 4
    assert [(tensor_digest(x), tensor_digest(y)) for x, y in kept] == digests
    assert len({x.data_ptr() for x, _ in kept}) == len(kept)

    views, digests = [], []
    for images, _ in loader:
        views.append(images[:, :, :3])
        digests.append(tensor_digest(images[:, :, :3]))
    assert [tensor_digest(v) for v in views] == digests

    # the same epochs from a fresh loader whose batches are copied at once and dropped
    again = DaliLoader(cfg, "train")
    copies = [tensor_digest(images.clone()) for _ in range(2) for images, _ in again]
    assert copies == [tensor_digest(x) for x, _ in kept]
