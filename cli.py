"""The ``dalinorm`` command line: argparse subcommands, nothing else.

Every user error (bad config, missing data, ...) prints one line ``error: <key or file>: <what>``
and exits with code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import yaml

from dalinorm.config import Config, DalinormError, config_to_dict, load_config

log = logging.getLogger("dalinorm.cli")

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_CONFIG = PACKAGE_DIR / "configs" / "sample.yaml"


def _add_config_args(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    if optional:
        parser.add_argument("config", nargs="?", default=str(SAMPLE_CONFIG),
                            help="YAML config (default: the shipped configs/sample.yaml)")
    else:
        parser.add_argument("config", help="YAML config file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set loader.batch_size=64 (repeatable; "
                             "the value is parsed as YAML)")


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config, overrides=args.overrides)


# ---------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return 0


# ---------------------------------------------------------------------- demo
def _stream_epoch(loader) -> dict:
    """One epoch through ``loader``: counts, shapes, speed and per-channel output moments."""
    import torch

    channel_dim = 1 if loader.cfg.output.layout == "NCHW" else 3
    reduce_dims = [d for d in range(4) if d != channel_dim]
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    values = 0
    images_seen = 0
    shape = dtype = device = None
    start = time.perf_counter()
    for batches, (images, labels) in enumerate(loader, start=1):
        x = images.to(torch.float64)
        total += x.sum(dim=reduce_dims).cpu()
        total_sq += (x * x).sum(dim=reduce_dims).cpu()
        values += x.numel() // 3
        images_seen += labels.shape[0]
        shape, dtype, device = tuple(images.shape), images.dtype, images.device
    seconds = time.perf_counter() - start
    mean = total / max(values, 1)
    std = (total_sq / max(values, 1) - mean * mean).clamp_min(0).sqrt()
    return {
        "batches": batches if images_seen else 0,
        "images": images_seen,
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(device),
        "images_per_s": images_seen / seconds if seconds > 0 else float("nan"),
        "mean": mean.tolist(),
        "std": std.tolist(),
    }


def cmd_demo(args: argparse.Namespace) -> int:
    from dalinorm.integration.loader import DaliLoader

    cfg = _load(args)
    print(f"config: {args.config} (valid)")
    for split in ("train", "val"):
        loader = DaliLoader(cfg, split)
        result = _stream_epoch(loader)
        print(
            f"{split:>5}: device {result['device']}, {result['batches']} batches, "
            f"{result['images']} images, batch shape {list(result['shape'])} {result['dtype']}, "
            f"{result['images_per_s']:.0f} images/s"
        )
        print(
            f"       normalized output per channel: mean "
            + ", ".join(f"{v:+.3f}" for v in result["mean"])
            + "; std "
            + ", ".join(f"{v:.3f}" for v in result["std"])
            + f"  (normalization: {loader.normalization.origin})"
        )
        loader.close()
    return 0


# ---------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dalinorm",
        description="DALI input pipelines for PyTorch with correct normalization statistics.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a config and print it fully resolved as YAML")
    _add_config_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="stream one train and one eval epoch of the sample data")
    _add_config_args(p, optional=True)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("dalinorm").setLevel(logging.DEBUG if args.debug else logging.INFO)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DalinormError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
