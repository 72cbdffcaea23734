"""Two real processes under torch.distributed (gloo): sharding, equal steps, reshuffle, resume."""

from __future__ import annotations

import pytest

import json
import socket
from pathlib import Path

import torch.multiprocessing as mp

from testkit import make_config, tensor_digest, write_textured_folder


def _worker(rank: int, world: int, root: str, port: int, out: str) -> None:
    import torch.distributed as dist

    from dalinorm import DaliLoader

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cfg = make_config(Path(root), "loader.batch_size=4")
        loader = DaliLoader(cfg, "train")  # rank and world size from torch.distributed
        # every image is its own class: the labels say which images a rank read
        epochs = [[i for _, labels in loader for i in labels.tolist()] for _ in range(3)]

        # resume: stop after 5 batches (mid epoch 2 of 3 batches each), continue in a new loader
        def read(ld, n):
            got = []
            while len(got) < n:
                for images, labels in ld:
                    # textured images: the digest changes with any other crop or flip
                    got.append((labels.tolist(), tensor_digest(images)))
                    if len(got) == n:
                        break
            return got

        whole = read(DaliLoader(cfg, "train"), 9)
        first = DaliLoader(cfg, "train")
        head = read(first, 5)
        state = first.state_dict()
        second = DaliLoader(cfg, "train")
        second.load_state_dict(state)
        tail = read(second, 4)
        result = {"rank": loader.rank, "world": loader.world_size, "steps": len(loader),
                  "epochs": epochs, "resume_exact": head + tail == whole}
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # a subprocess or a training run
def test_two_ranks_disjoint_equal_steps_reshuffled_and_resumable(tmp_path):
    # 37: not divisible by 2 ranks or batch 4; one class per image, so a label names its image
    data = write_textured_folder(tmp_path / "data", n=37, classes=37)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(2, str(data.root), port, str(tmp_path)), nprocs=2, join=True,
                       start_method="spawn")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in ranks] == [0, 1] and {r["world"] for r in ranks} == {2}
    assert ranks[0]["steps"] == ranks[1]["steps"] == (37 // 2) // 4
    for epoch in range(3):
        a, b = (set(r["epochs"][epoch]) for r in ranks)
        assert len(a) == len(b) == 16 and not a & b, "ranks must read disjoint images"
    # the split is redrawn every epoch: a rank does not keep a fixed shard
    assert set(ranks[0]["epochs"][0]) != set(ranks[0]["epochs"][1])
    assert all(r["resume_exact"] for r in ranks)
