"""The ``dalinorm`` command line: argparse subcommands, nothing else.

Exit codes (README's table): 0 ok; 1 a check found problems (bad files, parity beyond
tolerance); 2 a usage, config or input-file error (one line ``error: <key or file>: <what>``,
also for a missing dependency); 3 an unexpected internal error (one line, ``--debug`` for the
traceback); 130 interrupted. ``--debug``, before or after the subcommand, adds the traceback
and debug logs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

import yaml

from dalinorm.config import Config, config_to_dict, load_config
from dalinorm.errors import DalinormError, MissingDependencyError
from dalinorm.version import __version__


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
    if cfg.normalize.source == "stats":  # a missing or corrupt stats file is a config error too
        from dalinorm.stats.file import read_stats_file

        read_stats_file(cfg.normalize.stats_file)
    sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    from dalinorm.stats.normalization import explain_normalization

    for line in explain_normalization(cfg):  # YAML comments: the output stays a valid config
        sys.stdout.write(f"# {line}\n")
    from dalinorm.pipelines.augment import describe_augmentation

    # what the train graph does with the augmentation keys, as YAML comments (still valid YAML)
    for line in describe_augmentation(cfg):
        sys.stdout.write(f"# {line}\n")
    for line in _describe_epochs(cfg):
        sys.stdout.write(f"# {line}\n")
    from dalinorm.pipelines.resize import describe_interpolation

    for line in describe_interpolation(cfg):  # the resize filters, as comments too
        sys.stdout.write(f"# {line}\n")
    return 0


def _describe_epochs(cfg: Config) -> list[str]:
    """What train.size_schedule and loader.repeated_augment do, epoch by epoch."""
    from dalinorm.data.repeated_augment import describe_repeated_augment

    schedule = cfg.train.size_schedule
    sizes = (f"FFCV's progressive resizing (get_resolution): {schedule.describe()}; train.size "
             "is not used for training" if schedule is not None
             else f"none (every epoch at train.size {cfg.train.size})")
    return [f"train.size_schedule: {sizes}", describe_repeated_augment(cfg.loader.repeated_augment)]


# ---------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from dalinorm.commands.demo import demo_lines

    cfg = _load(args)
    for line in demo_lines(cfg, args.config):
        print(line)
    return 0


# ---------------------------------------------------------------------- stats
def cmd_stats(args: argparse.Namespace) -> int:
    from dalinorm.commands.stats import (
        format_stats_table,
        init_distributed_if_launched,
        is_rank_zero,
    )
    from dalinorm.stats import compute_stats, write_stats_file

    cfg = _load(args)
    if args.plot:
        from dalinorm.stats.plot import require_matplotlib

        require_matplotlib()
    split = args.split or "train"
    out = Path(args.out) if args.out else (cfg.normalize.stats_file or Path(f"{split}_stats.yaml"))
    init_distributed_if_launched()
    stats = compute_stats(cfg, split=split, allow_split=args.allow_split,
                          histogram=bool(args.plot or args.histogram), progress=is_rank_zero())
    if not is_rank_zero():
        return 0
    write_stats_file(out, stats)
    print(format_stats_table(stats))
    print(f"wrote {out} (fingerprint {stats.fingerprint[:19]}…, file list {out.name}.files.txt)")
    if args.plot:
        from dalinorm.stats.plot import plot_histograms

        plot_histograms(stats, Path(args.plot))
        print(f"wrote {args.plot}")
    return 0


# ---------------------------------------------------------------------- check-data
def cmd_check_data(args: argparse.Namespace) -> int:
    from dalinorm.commands.check_data import check_data

    cfg = _load(args)
    splits = ("train", "val") if args.split == "all" else (args.split,)
    reports, lines = check_data(cfg, splits, write_list=Path(args.write_list) if args.write_list else None)
    for line in lines:
        print(line)
    return 1 if any(r.bad for r in reports) else 0


# ---------------------------------------------------------------------- pack
def _size_arg(text: str) -> int:
    from dalinorm.commands.pack import parse_size

    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--shard-size: ")) from None


def cmd_pack(args: argparse.Namespace) -> int:
    from dalinorm.commands.pack import pack_split, pack_summary

    cfg = _load(args)
    shuffle = None if args.order == "auto" else args.order == "shuffled"
    result = pack_split(cfg, split=args.split, out=Path(args.out), shard_size=args.shard_size,
                        num_shards=args.num_shards, shuffle=shuffle, seed=args.seed, progress=True)
    for line in pack_summary(result, cfg, args.split):
        print(line)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from dalinorm.commands.pack import index_tars

    result = index_tars(Path(args.folder), progress=True)
    print(f"{result.out}: {result.num_samples} images in {result.num_shards} tars, "
          f"{result.bytes / 1e6:,.1f} MB; read it with: --set data.format=webdataset "
          f"--set data.root={result.out.parent.resolve()} --set data.train={result.out.name}")
    return 0


# ---------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from dalinorm.commands.bench import format_table, run_bench, write_report

    cfg = _load(args)
    report = run_bench(cfg, split=args.split, candidates=args.candidates, epochs=args.epochs,
                       warmup=args.warmup, workers=args.workers, with_floor=not args.no_floor,
                       with_stats=not args.no_stats, memory_epochs=args.memory_epochs)
    print(format_table(report))
    if args.json:
        write_report(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0


def _candidates_arg(text: str) -> tuple[str, ...]:
    from dalinorm.commands.bench import CANDIDATES

    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown candidate {', '.join(unknown) or repr(text)}; expected a comma-separated "
            f"list of {', '.join(CANDIDATES)}")
    return names


# ---------------------------------------------------------------------- parity
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def cmd_parity(args: argparse.Namespace) -> int:
    from dalinorm.commands.parity import format_report, run_eval_parity, write_report

    cfg = _load(args)
    report = run_eval_parity(cfg, split=args.split, n=args.n)
    print(format_report(report))
    if args.json:
        write_report(Path(args.json), report)
        print(f"wrote {args.json}")
    return 0 if report.passed else 1


# ---------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dalinorm",
        description="DALI input pipelines for PyTorch with correct normalization statistics.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"dalinorm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a config and print it fully resolved as YAML")
    _add_config_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("stats", help="exact per-channel mean/std of the training split -> stats file")
    _add_config_args(p)
    p.add_argument("--split", default=None,
                   help="split to reduce: train (default), val, or a folder under data.root")
    p.add_argument("--out", default=None,
                   help="stats file to write (default: normalize.stats_file, else <split>_stats.yaml)")
    p.add_argument("--plot", default=None, metavar="PATH.png",
                   help="also draw per-channel histograms with mean ± std (needs matplotlib)")
    p.add_argument("--histogram", action="store_true",
                   help="also record 256-bin histograms, min and max (slower: images go to the host)")
    p.add_argument("--allow-split", action="store_true",
                   help="allow a split other than the training split (leaks it into normalization)")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("check-data", help="decode every file of a split and report the unusable ones")
    _add_config_args(p)
    p.add_argument("--split", choices=("train", "val", "all"), default="all")
    p.add_argument("--write-list", default=None, metavar="PATH",
                   help="write the good files (paths relative to data.root) for data.checked_list")
    p.set_defaults(func=cmd_check_data)

    p = sub.add_parser("pack", help="write a split as shuffled webdataset tar shards with index "
                                    "files and a manifest")
    _add_config_args(p)
    p.add_argument("--split", default="train", help="split to pack: train (default), val, or a "
                                                    "folder under data.root")
    p.add_argument("--out", required=True, metavar="DIR", help="empty folder for the shards (or the "
                                                               "folder of an interrupted pack, to resume)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--shard-size", type=_size_arg, default=1_000_000_000, metavar="SIZE",
                      help="largest tar shard, e.g. 1GB (default), 500MB, 64MiB")
    size.add_argument("--num-shards", type=_positive_int, default=None, metavar="N",
                      help="exactly N tars of equal image counts instead (a multiple of the world "
                           "size gives every rank the same number of images)")
    p.add_argument("--order", choices=("auto", "shuffled", "listed"), default="auto",
                   help="image order in the shards: shuffled for the training split, the split's "
                        "own order otherwise (auto, default)")
    p.add_argument("--seed", type=int, default=None, help="shuffle seed (default: loader.seed)")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("index", help="make existing webdataset tars (image + .cls per sample) "
                                     "readable: DALI index files and a manifest")
    p.add_argument("folder", help="folder of .tar shards (written to: .idx, samples.tsv, manifest.json)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("bench", help="images/s of dalinorm vs the classic and v2 torchvision "
                                     "DataLoaders and DALI's stock graph, decode floor, stats pass")
    _add_config_args(p)
    p.add_argument("--split", choices=("train", "val"), default="train")
    p.add_argument("--candidates", type=_candidates_arg,
                   default=("dalinorm", "torchvision", "torchvision-v2", "dali-stock"),
                   metavar="A,B,...", help="loaders to time, alternating epochs: dalinorm, "
                   "torchvision (classic transforms), torchvision-v2, dali-stock (default: all)")
    p.add_argument("--epochs", type=_positive_int, default=3, help="timed epochs per candidate (default 3)")
    p.add_argument("--warmup", type=_non_negative_int, default=1, help="untimed epochs first (default 1)")
    p.add_argument("--workers", type=_non_negative_int, default=None,
                   help="torchvision DataLoader workers (default: all cores)")
    p.add_argument("--no-floor", action="store_true", help="skip the decode-only floor")
    p.add_argument("--no-stats", action="store_true", help="skip the statistics pass")
    p.add_argument("--memory-epochs", type=_non_negative_int, default=0, metavar="N",
                   help="also run each candidate alone in a fresh process for N epochs: peak PSS "
                        "and PSS growth from epoch 2 to N (default 0: skip)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("parity", help="DALI's eval output vs torchvision's recipe, per image and channel "
                                      "(exit 1 beyond tolerance)")
    _add_config_args(p)
    p.add_argument("--split", choices=("train", "val"), default="val",
                   help="images to run the eval recipe on (default val)")
    p.add_argument("--n", type=_positive_int, default=None, metavar="N",
                   help="compare the first N images in ImageFolder order (default: all)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("demo", help="stream one train and one eval epoch of the sample data")
    _add_config_args(p, optional=True)
    p.set_defaults(func=cmd_demo)

    # --debug also after the subcommand; SUPPRESS keeps a --debug given before it
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks and debug logs")
    return parser


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(message)s" if not args.debug else "%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("dalinorm").setLevel(logging.DEBUG if args.debug else logging.INFO)
    func: Callable[[argparse.Namespace], int] = args.func
    # SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C, so that half-written
    # temporary files are removed and the previous output stays in place.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return func(args)
    except DalinormError as err:
        return _fail(f"error: {err}", 2, debug=args.debug)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ImportError as err:
        missing = MissingDependencyError.from_import_error(err, f"dalinorm {args.command}")
        if missing is None:
            return _internal_error(err, debug=args.debug)
        return _fail(f"error: {missing}", 2, debug=args.debug)
    except OSError as err:
        if err.filename is None:  # not about a path the user gave
            return _internal_error(err, debug=args.debug)
        return _fail(f"error: {err.filename}: {err.strerror or err}", 2, debug=args.debug)
    except Exception as err:
        return _internal_error(err, debug=args.debug)


def _fail(line: str, code: int, *, debug: bool) -> int:
    """Print ``line`` (after the traceback with ``--debug``) and return the exit code."""
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)
    return code


def _internal_error(err: BaseException, *, debug: bool) -> int:
    lines = [l.strip() for l in str(err).splitlines() if l.strip()]
    message = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return _fail(f"error: internal error: {message} (rerun with --debug for the traceback)", 3,
                 debug=debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
