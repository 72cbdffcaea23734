"""Where dalinorm's CPU time goes: ms of CPU per image for each stage of the train and eval
graphs, one DALI thread, measured by pipelines that stop after each stage.

Each row is a pipeline built once (the steady state), run for ``--epochs`` epochs after a
warm-up epoch; CPU time is this process's (the DALI thread, the executor, Python), divided by
the images the pipeline produced (the padded last batch included). The cost of a stage is the
difference between its row and the row above. The loader rows iterate ``DaliLoader`` and DALI's
``DALIGenericIterator`` over the same graphs, so they add the copy into torch tensors and the
epoch logic (their images are the ones delivered, so they also carry the padded batch).

    python benchmarks/profile_stages.py --root /tmp/inet [--batch 128] [--threads 1] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import time

log = logging.getLogger("profile_stages")


def _cpu() -> float:
    return time.process_time()


def _time_pipe(pipe, batches: int, batch_size: int, epochs: int) -> dict:
    from dalinorm.pipelines.run import run_batches

    pipe.build()
    for _ in run_batches(pipe, batches):  # warm-up epoch
        pass
    cpu0, wall0 = _cpu(), time.perf_counter()
    for _ in run_batches(pipe, batches * epochs):
        pass
    images = batches * batch_size * epochs
    return {"cpu_ms": 1000 * (_cpu() - cpu0) / images, "wall_ms": 1000 * (time.perf_counter() - wall0) / images}


def _time_loader(loader, epochs: int) -> dict:
    for _ in loader:  # warm-up epoch
        pass
    time.sleep(1.5)  # let the prefetch of the next epoch finish before the clock starts
    images = 0
    cpu0, wall0 = _cpu(), time.perf_counter()
    for _ in range(epochs):
        for x, _ in loader:
            images += x.shape[0]
    time.sleep(1.5)  # ... and charge the prefetch after the last epoch (idle sleep costs no CPU)
    return {"cpu_ms": 1000 * (_cpu() - cpu0) / images,
            "wall_ms": 1000 * (time.perf_counter() - wall0 - 1.5) / images}


def _copy_cost(pipe_outputs, fresh: bool) -> float:
    """ms of CPU per image to copy one float32 batch into a torch tensor: a fresh one each
    time or a reused one (what DaliLoader did before it handed DALI's buffers to torch uncopied)."""
    import torch
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    images = pipe_outputs[0].as_tensor()
    n = images.shape()[0]
    reused = torch.empty(images.shape(), dtype=to_torch_type[images.dtype])
    t0 = time.thread_time()
    for _ in range(20):
        tensor = torch.empty(images.shape(), dtype=to_torch_type[images.dtype]) if fresh else reused
        feed_ndarray(images, tensor)
    return 1000 * (time.thread_time() - t0) / (20 * n)


def profile(root: str, batch: int, threads: int, epochs: int) -> dict:
    import math

    from nvidia.dali import fn, types

    from dalinorm.commands.bench import StockDaliLoader
    from dalinorm.config import load_config
    from dalinorm.integration.loader import DaliLoader
    from dalinorm.pipelines.graphs import build_eval_pipeline, build_train_pipeline
    from dalinorm.pipelines.normalize import dali_mean_std
    from dalinorm.pipelines.readers import read_encoded
    from dalinorm.pipelines.resample import pil_resize_numba
    from dalinorm.pipelines.resize import eval_window
    from dalinorm.pipelines.run import run_batches
    from dalinorm.pipelines.specs import GraphSpec, new_pipeline
    from dalinorm.pipelines.stock import (
        build_stock_eval_pipeline,
        build_stock_train_pipeline,
    )
    from dalinorm.pipelines.usable import usable_listing
    from dalinorm.stats.normalization import resolve_normalization

    cfg = load_config("configs/imagenet_resnet50.yaml", overrides=[
        f"data.root={root}", "loader.device=cpu", f"loader.batch_size={batch}",
        f"loader.num_threads={threads}"])
    norm = resolve_normalization(cfg)
    mean, std = dali_mean_std(norm)
    rows: dict = {}
    for split in ("train", "val"):
        listing, _ = usable_listing(cfg, split)
        batches = math.ceil(len(listing) / batch)
        spec = GraphSpec.for_block(listing, 0, len(listing), device_id=None, seed=0)
        size = cfg.train.size if split == "train" else cfg.eval.crop

        def stage(upto: str):
            pipe = new_pipeline(cfg, spec)
            with pipe:
                jpegs, labels = read_encoded(spec, shuffle=split == "train")
                out = jpegs
                if upto != "read":
                    if split == "train":
                        out = fn.decoders.image_random_crop(
                            jpegs, device="cpu", output_type=types.RGB,
                            random_area=list(cfg.train.scale),
                            random_aspect_ratio=list(cfg.train.ratio), num_attempts=10)
                    else:
                        out = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
                if upto in ("resize", "stock resize"):
                    if upto == "stock resize":
                        out = (fn.resize(out, resize_x=size, resize_y=size,
                                         interp_type=types.INTERP_TRIANGULAR) if split == "train"
                               else fn.resize(out, resize_shorter=cfg.eval.resize_shorter,
                                              interp_type=types.INTERP_TRIANGULAR))
                    elif split == "train":
                        out = pil_resize_numba(out, out_h=size, out_w=size)
                    else:
                        out = eval_window(jpegs, out, cfg, spec, False)
                pipe.set_outputs(out)
            return pipe

        prefix = "train" if split == "train" else "eval"
        rows[f"{prefix}: read"] = _time_pipe(stage("read"), batches, batch, epochs)
        decode = "ROI decode (image_random_crop)" if split == "train" else "full decode"
        rows[f"{prefix}: + {decode}"] = _time_pipe(stage("decode"), batches, batch, epochs)
        what = ("numba PIL resize (uint8)" if split == "train"
                else "geometry + numba PIL window resize (uint8)")
        rows[f"{prefix}: + {what}"] = _time_pipe(stage("resize"), batches, batch, epochs)
        full = (build_train_pipeline if split == "train" else build_eval_pipeline)(cfg, spec, norm)
        rows[f"{prefix}: dalinorm graph (+ normalize{', mirror' if split == 'train' else ''})"] = \
            _time_pipe(full, batches, batch, epochs)
        batch_out = next(run_batches(full, 1))
        rows[f"{prefix}: copy into torch, fresh tensor (main thread)"] = {"cpu_ms": _copy_cost(batch_out, True), "wall_ms": None}
        rows[f"{prefix}: copy into torch, reused tensor (main thread)"] = {"cpu_ms": _copy_cost(batch_out, False), "wall_ms": None}
        rows[f"{prefix}: DaliLoader (copy into torch, epoch logic)"] = _time_loader(DaliLoader(cfg, split), epochs)
        rows[f"{prefix}: stock: + DALI resize (triangular)"] = _time_pipe(stage("stock resize"), batches, batch, epochs)
        stock = (build_stock_train_pipeline if split == "train" else build_stock_eval_pipeline)(cfg, spec, norm)
        rows[f"{prefix}: stock graph (+ crop_mirror_normalize)"] = _time_pipe(stock, batches, batch, epochs)
        rows[f"{prefix}: stock + DALIGenericIterator"] = _time_loader(StockDaliLoader(cfg, split, None), epochs)
        for name, r in rows.items():
            if name.startswith(prefix) and "logged" not in r:
                r["logged"] = True
                log.info("%-60s %6.3f ms CPU/img", name, r["cpu_ms"])
    for r in rows.values():
        r.pop("logged", None)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="an ImageFolder root with train/ and val/")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("dalinorm").setLevel(logging.WARNING)
    rows = profile(args.root, args.batch, args.threads, args.epochs)
    print(f"{'stage':<62}{'CPU ms/img':>11}{'wall ms/img':>12}")
    for name, r in rows.items():
        wall = f"{r['wall_ms']:.3f}" if r["wall_ms"] is not None else ""
        print(f"{name:<62}{r['cpu_ms']:>11.3f}{wall:>12}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
