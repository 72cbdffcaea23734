"""Soak test of the CPU path: memory over many epochs, and leaks across loader lifetimes.

    python benchmarks/soak.py [--config configs/sample.yaml] [--epochs 20] [--cycles 50]

1. One train loader, ``--epochs`` epochs: RSS after each epoch; RSS after the last epoch
   must be within 5% of RSS after epoch 2.
2. ``--cycles`` times: build a train loader, read one batch, close it, collect garbage;
   threads, open file descriptors and RSS after the last cycle must be within 5% of
   (threads and fds: equal to) what they were after the first.
Prints a table and exits non-zero if a bound is broken.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))  # DALI's C++ threads too, not only Python's


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "sample.yaml"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=50)
    args = parser.parse_args()

    from dalinorm import DaliLoader, load_config

    cfg = load_config(args.config, overrides=["loader.device=cpu"])
    ok = True
    loader = DaliLoader(cfg, "train")
    rss = []
    for epoch in range(1, args.epochs + 1):
        for _ in loader:
            pass
        rss.append(rss_mib())
        print(f"epoch {epoch:>3}: RSS {rss[-1]:.1f} MiB")
    growth = rss[-1] / rss[1] - 1
    ok &= growth <= 0.05
    print(f"RSS epoch 2 -> {args.epochs}: {rss[1]:.1f} -> {rss[-1]:.1f} MiB ({growth:+.1%}, bound +5%)")
    loader.close()
    del loader
    gc.collect()

    first = None
    for cycle in range(1, args.cycles + 1):
        loader = DaliLoader(cfg, "train")
        next(iter(loader))
        loader.close()
        del loader
        gc.collect()
        sample = (os_threads(), open_fds(), rss_mib())
        first = first or sample
        if cycle in (1, 2, 10, args.cycles):
            print(f"cycle {cycle:>3}: threads {sample[0]}, fds {sample[1]}, RSS {sample[2]:.1f} MiB")
    threads_ok = sample[0] <= first[0]
    fds_ok = sample[1] <= first[1]
    rss_ok = sample[2] <= first[2] * 1.05
    ok &= threads_ok and fds_ok and rss_ok
    print(f"{args.cycles} loaders: threads {first[0]} -> {sample[0]}, fds {first[1]} -> {sample[1]}, "
          f"RSS {first[2]:.1f} -> {sample[2]:.1f} MiB ({sample[2] / first[2] - 1:+.1%}, bound +5%)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
