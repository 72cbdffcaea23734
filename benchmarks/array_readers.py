"""Read speed of .npy arrays: DALI's file reader + ``decoders.numpy`` (what dalinorm uses:
it carries labels) against ``readers.numpy`` (no labels), CPU, read and decode only.

    python benchmarks/make_multiband_npy.py /tmp/bench8 --train 256 --val 0
    python benchmarks/array_readers.py /tmp/bench8/train [--batch 64] [--threads 2]

Prints arrays/s of each reader, twice, alternating (after 4 warm-up batches each).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nvidia.dali import fn, pipeline_def


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an array split: <class>/<name>.npy")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8)
    args = parser.parse_args()
    files = sorted(str(f) for f in args.folder.glob("*/*.npy"))
    common = dict(batch_size=args.batch, num_threads=args.threads, device_id=None,
                  prefetch_queue_depth=2)

    @pipeline_def(**common)
    def file_reader():
        raw, _ = fn.readers.file(files=files, labels=list(range(len(files))), pad_last_batch=True)
        return fn.decoders.numpy(raw)

    @pipeline_def(**common)
    def numpy_reader():
        return fn.readers.numpy(files=files, pad_last_batch=True)

    pipes = {"file reader + decoders.numpy": file_reader(), "readers.numpy": numpy_reader()}
    for pipe in pipes.values():
        pipe.build()
        for _ in range(4):
            pipe.run()
    for _ in range(2):
        for name, pipe in pipes.items():
            start = time.perf_counter()
            for _ in range(args.batches):
                pipe.run()
            rate = args.batches * args.batch / (time.perf_counter() - start)
            print(f"{name}: {rate:.0f} arrays/s")


if __name__ == "__main__":
    main()
