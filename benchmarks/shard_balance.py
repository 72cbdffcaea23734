"""How evenly whole tar shards split across ranks: images per rank and the images a rank
does not reach per epoch under equal steps, for a simulated ImageNet-sized pack.

    python benchmarks/shard_balance.py --images 1281167 --mean-kb 110 --shard-size 1GB 250MB 100MB \
        --num-shards 512 --world 8 64

Image sizes are drawn log-normal (σ 0.5) around the mean; tars are cut by bytes as
``dalinorm pack`` cuts them, and ranks get the blocks ``SplitListing.rank_block`` gives.
"""

from __future__ import annotations

import argparse

import numpy as np
from dalinorm.commands.pack import parse_size
from dalinorm.data.listing import tar_block_bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_281_167)
    parser.add_argument("--mean-kb", type=float, default=110.0)
    parser.add_argument("--shard-size", nargs="+", default=["1GB", "250MB", "100MB"])
    parser.add_argument("--num-shards", type=int, nargs="*", default=[512],
                        help="also packs of exactly N tars of equal image counts")
    parser.add_argument("--world", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = rng.lognormal(0.0, 0.5, args.images)
    sizes *= args.mean_kb * 1000 / sizes.mean()
    member = sizes + 3 * 512  # tar headers and padding of the image and its .cls
    print("| shard size | tars | world | tars per rank | images per rank | unread per epoch, worst rank |")
    print("|---|---|---|---|---|---|")
    plans = []
    for text in args.shard_size:
        cuts = np.floor(np.cumsum(member) / parse_size(text)).astype(np.int64)
        plans.append((text, np.bincount(cuts).tolist()))
    for n in args.num_shards:
        plans.append((f"--num-shards {n}", [(k + 1) * args.images // n - k * args.images // n
                                              for k in range(n)]))
    for text, counts in plans:
        for world in args.world:
            if world > len(counts):
                print(f"| {text} | {len(counts)} | {world} | – | fewer tars than ranks | – |")
                continue
            per_rank = [b - a for a, b in (tar_block_bounds(counts, r, world) for r in range(world))]
            gap = max(per_rank) - min(per_rank)
            print(f"| {text} | {len(counts)} | {world} | {len(counts) / world:.1f} | "
                  f"{min(per_rank):,}–{max(per_rank):,} | {gap:,} ({gap / max(per_rank):.1%}) |")


if __name__ == "__main__":
    main()
