"""Train a torchvision model with dalinorm's DaliLoader (or the torchvision reference loader).

    python examples/train.py                                   # resnet18 on the sample data
    python examples/train.py configs/imagenet_resnet50.yaml --model resnet50 --epochs 90
    torchrun --nproc_per_node=2 examples/train.py --epochs 3   # DDP: gloo on CPU, nccl on GPU
    python examples/train.py --loader torchvision              # the reference DataLoader
    python examples/train.py --checkpoint ckpt.pt              # save model + loader state per epoch
    python examples/train.py --checkpoint ckpt.pt --resume     # continue exactly where it stopped
    python examples/train.py --mixup 0.2 --cutmix 1.0          # torchvision's v2.MixUp / v2.CutMix
    python examples/train.py configs/recipe_torchvision_rn50.yaml --sample-data --mixup 0.2 --cutmix 1.0
                               # a recipe config (also recipe_ffcv_rn50, recipe_timm_rsb) on the sample data
    python examples/train.py --compare-normalization --out study/   # the normalization study

Input normalization (dalinorm) and BatchNorm inside the model complement each other: the
first puts every input channel on a common scale before the first convolution, the second
keeps activations in range after every layer.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("train")


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device): joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return rank, world, device


def small_cnn(num_classes: int) -> nn.Module:
    """A small convolutional network with BatchNorm, for quick studies on a CPU."""
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True), nn.MaxPool2d(2))

    return nn.Sequential(block(3, 16), block(16, 32), block(32, 64), block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def build_model(name: str, num_classes: int) -> nn.Module:
    if name == "small":
        return small_cnn(num_classes)
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)


def batch_augment(args, num_classes: int):
    """torchvision's MixUp and/or CutMix (one of the two per batch when both are given, as
    torchvision's reference scripts do), or None. They run on the batch as the loader gives
    it, on the training device, and turn the int64 labels into [N, classes] soft targets."""
    from torchvision.transforms import v2

    ops = []
    if args.mixup:
        ops.append(v2.MixUp(alpha=args.mixup, num_classes=num_classes))
    if args.cutmix:
        ops.append(v2.CutMix(alpha=args.cutmix, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)


def make_loaders(cfg, kind: str):
    if kind == "dali":
        from dalinorm import DaliLoader

        return DaliLoader(cfg, "train"), DaliLoader(cfg, "val")
    from dalinorm.integration.reference import reference_loader

    return reference_loader(cfg, "train"), reference_loader(cfg, "val")


def evaluate(model: nn.Module, loader, device: torch.device) -> float:
    """Top-1 accuracy over the whole split, summed over ranks."""
    model.eval()
    correct = torch.zeros(2, device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            correct[0] += (model(images).argmax(1) == labels).sum()
            correct[1] += labels.numel()
    if dist.is_initialized():
        dist.all_reduce(correct)
    model.train()
    return float(correct[0] / correct[1].clamp_min(1))


def train(cfg, args, *, rank: int, device: torch.device, quiet: bool = False) -> list[dict]:
    """Train for args.epochs; returns one record per epoch (loss, accuracy, images/s)."""
    torch.manual_seed(cfg.loader.seed)
    train_loader, val_loader = make_loaders(cfg, args.loader)
    classes = len(train_loader.dataset.classes) if args.loader == "torchvision" else len(train_loader.classes)
    model = build_model(args.model, classes).to(device)
    mix = batch_augment(args, classes)
    if mix is not None and not quiet and rank == 0:
        log.info("batch augmentation, soft targets: %r", mix)
    if cfg.output.layout == "NHWC":
        model = model.to(memory_format=torch.channels_last)
    if dist.is_initialized():
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    steps = args.epochs * len(train_loader)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    start_epoch, history = 0, []
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    if ckpt and args.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        (model.module if dist.is_initialized() else model).load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        if args.loader == "dali":
            train_loader.load_state_dict(state["loader"][rank])
        start_epoch, history = state["epoch"], state["history"]
        if "rng" in state:  # the mixup/cutmix draws continue as in an uninterrupted run
            torch.set_rng_state(state["rng"])
        log.info("resumed from %s at epoch %d", ckpt, start_epoch + 1)
    for epoch in range(start_epoch, args.epochs):
        seen, loss_sum, start = 0, torch.zeros((), device=device), time.perf_counter()
        if args.loader == "torchvision" and hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        for images, labels in train_loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            # soft targets ([N, classes], each row sums to 1) under mixup/cutmix: cross_entropy
            # takes class probabilities as well as class indices
            targets = labels
            if mix is not None:
                images, targets = mix(images, labels)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = nn.functional.cross_entropy(model(images), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * labels.numel()
            seen += labels.numel()
        seconds = time.perf_counter() - start
        record = {"epoch": epoch + 1, "loss": float(loss_sum) / max(seen, 1),
                  "val_acc": evaluate(model, val_loader, device), "images_per_s": seen / seconds}
        history.append(record)
        if not quiet and rank == 0:
            log.info("epoch %d/%d  loss %.4f  val acc %.3f  %.0f images/s (rank 0)", epoch + 1,
                     args.epochs, record["loss"], record["val_acc"], record["images_per_s"])
        if ckpt:
            loader_states = [train_loader.state_dict()] if args.loader == "dali" else [None]
            if dist.is_initialized():
                gathered = [None] * dist.get_world_size()
                dist.all_gather_object(gathered, loader_states[0])
                loader_states = gathered
            if rank == 0:
                torch.save({"model": (model.module if dist.is_initialized() else model).state_dict(),
                            "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch + 1,
                            "loader": loader_states, "history": history, "rng": torch.get_rng_state()},
                           ckpt)
    return history


def compare_normalization(cfg, args, *, rank: int, device: torch.device) -> None:
    """Train the same model from the same seed under four input normalizations."""
    from dalinorm.stats import compute_stats, write_stats_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stats_file = out / "train_stats.yaml"
    if rank == 0:
        write_stats_file(stats_file, compute_stats(cfg))
    if dist.is_initialized():
        dist.barrier()
    variants = {
        "none ([0, 1] only)": dict(source="none"),
        "ImageNet mean/std": dict(source="imagenet"),
        "dataset, per channel": dict(source="stats", stats_file=stats_file, mode="channel"),
        "dataset, global": dict(source="stats", stats_file=stats_file, mode="global"),
    }
    results = {}
    for name, values in variants.items():
        norm = dataclasses.replace(cfg.normalize, mean=None, std=None, **values)
        results[name] = train(dataclasses.replace(cfg, normalize=norm), args, rank=rank, device=device,
                              quiet=True)
        if rank == 0:
            last = results[name][-1]
            log.info("%-22s final loss %.4f  val acc %.3f", name, last["loss"], last["val_acc"])
    if rank != 0:
        return
    lines = ["| normalization | first-epoch loss | final loss | best val acc |", "|---|---|---|---|"]
    for name, hist in results.items():
        lines.append(f"| {name} | {hist[0]['loss']:.4f} | {hist[-1]['loss']:.4f} | "
                     f"{max(h['val_acc'] for h in hist):.3f} |")
    (out / "normalization_study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, hist in results.items():
        ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{args.model}, {args.epochs} epochs, seed {cfg.loader.seed}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "normalization_study.png", dpi=100)
    print(f"wrote {out / 'normalization_study.png'} and {out / 'normalization_study.md'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=str(REPO / "configs" / "sample.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--loader", choices=("dali", "torchvision"), default="dali")
    parser.add_argument("--model", default="resnet18", help="a torchvision model name, or 'small'")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--checkpoint", default=None, help="save model, optimizer and loader state here")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="torchvision v2.MixUp with this alpha (torchvision's recipe: 0.2); 0: off")
    parser.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA",
                        help="torchvision v2.CutMix with this alpha (torchvision's recipe: 1.0); 0: off")
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument("--sample-data", action="store_true",
                        help="run the config's recipe on the shipped sample data, in batches of 8 "
                             "(for an ImageNet config such as configs/recipe_*.yaml); overrides data.root, "
                             "data.format, the batch size, threads, and turns loader.repeated_augment "
                             "off (56 images are fewer than RASampler's 256)")
    parser.add_argument("--compare-normalization", action="store_true")
    parser.add_argument("--out", default="normalization_study", help="folder for the study's outputs")
    args = parser.parse_args()
    for flag in ("mixup", "cutmix"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag}: the Beta distribution's alpha must be > 0 (0 turns it off), "
                         f"got {getattr(args, flag)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("dalinorm").setLevel(logging.WARNING)

    from dalinorm import DalinormError, load_config

    try:
        # 56 images: torchvision's RASampler keeps n // 256 * 256 of them, none, so repeats are off
        sample = [f"data.root={REPO / 'sample_data'}", "data.format=imagefolder",
                  "loader.batch_size=8", "loader.num_threads=2",
                  "loader.repeated_augment=1"] if args.sample_data else []
        cfg = load_config(args.config, overrides=sample + args.overrides)
        if args.sample_data:
            log.warning("--sample-data: data.root, data.format, loader.batch_size, "
                        "loader.num_threads and loader.repeated_augment=1 override the config "
                        "(the sample's 56 images are fewer than RASampler's 256)")
        rank, _, device = setup_distributed()
        if rank != 0:
            logging.getLogger().setLevel(logging.WARNING)
        if args.compare_normalization:
            compare_normalization(cfg, args, rank=rank, device=device)
        else:
            history = train(cfg, args, rank=rank, device=device)
            if rank == 0 and len(history) > 1:
                log.info("loss %.4f -> %.4f over %d epochs", history[0]["loss"], history[-1]["loss"], len(history))
    except DalinormError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
