"""torchvision's GPU path for comparison with DALI: batched ``decode_jpeg(device="cuda")``,
then RandomResizedCrop + flip + normalize on the GPU, one batch at a time.

    python benchmarks/torchvision_gpu_decode.py --root /tmp/inet/train --batch 256 --epochs 3

Files are read from disk in the timed loop (as a loader would); prints images/s per epoch
and the median. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torchvision.io import decode_jpeg, read_file
from torchvision.transforms import v2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="an ImageFolder split")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    files = sorted(str(p) for p in args.root.glob("*/*.jpg"))
    crop = v2.Compose([v2.RandomResizedCrop(args.size, antialias=True), v2.RandomHorizontalFlip()])
    mean = torch.tensor([0.485, 0.456, 0.406], device="cuda").view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device="cuda").view(1, 3, 1, 1) * 255
    rates = []
    batches = [files[i:i + args.batch] for i in range(0, len(files), args.batch)]
    # file reading runs in a thread pool one batch ahead, so the GPU path is not I/O bound
    pool = ThreadPoolExecutor(max_workers=16)

    def read(batch: list[str]):
        return list(pool.map(read_file, batch))

    for epoch in range(args.epochs + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        pending = pool.submit(read, batches[0])
        for i in range(len(batches)):
            data = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(read, batches[i + 1])
            images = decode_jpeg(data, device="cuda")
            batch = torch.stack([crop(img) for img in images]).float()
            batch = (batch - mean) / std
        torch.cuda.synchronize()
        rate = len(files) / (time.perf_counter() - start)
        if epoch:  # the first epoch warms up nvJPEG and the allocator
            rates.append(rate)
        print(f"epoch {epoch}: {rate:.0f} images/s{' (warm-up)' if not epoch else ''}")
    print(f"torchvision decode_jpeg(cuda) + GPU transforms: median {statistics.median(rates):.0f} "
          f"images/s ({torch.cuda.get_device_name(0)}, batch {args.batch})")


if __name__ == "__main__":
    main()
