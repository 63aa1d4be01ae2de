"""``dynofa pipeline``: (train or adapt) -> profile -> search -> build-library -> plot, from a dataset and a checkpoint
or a supernet it trains.

Each stage is its own sub-command; the pipeline only chains them, passing each one's output to the next under
``--work``, and stops at the first failure. ``--<stage>-args`` adds options to one stage. ``--backend`` is the
serving backend whose latency profile predicts and search constrains and measures. With ``--checkpoint`` the
supernet is adapted to the dataset's classes; without it a fresh ``--net`` supernet is trained on the dataset
first (``--train-args`` sets its budget), which has them already. Both supernet families run every stage.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dynofa_ros.offline.commands.options import add_data_arguments, add_supernet_arguments
from dynofa_ros.supernet.serving import AUTO, ONNXRUNTIME, TORCH, resolve_backend

STAGES = ("train", "adapt", "profile", "search", "build-library", "plot")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa pipeline``."""
    add_supernet_arguments(parser, checkpoint="optional")
    parser.add_argument("--candidates", type=Path, help="results.json of a training run's evaluation (subnets "
                        "with val top-1); without it the search evaluates random subnets on this machine")
    parser.add_argument("--work", type=Path, default=Path("runs/offline"),
                        help="folder for the trained or adapted checkpoint, LUTs and search results (default: "
                        "%(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/library"),
                        help="library folder (default: %(default)s)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG (default: <work>/pareto.png)")
    parser.add_argument("--profile", default="cpu-1t", help="CPU profile whose LUT defines the search's latency "
                        "limits and the level order (default: %(default)s)")
    parser.add_argument("--backend", choices=[AUTO, TORCH, ONNXRUNTIME], default=AUTO,
                        help="serving backend whose latency the search constrains (profile fits its predictor) and "
                        "measures; auto: the perception node's on this machine, onnxruntime when it is installed, "
                        "else torch (default: %(default)s)")
    add_data_arguments(parser)
    for stage in STAGES:
        parser.add_argument(f"--{stage}-args", default="", metavar="ARGS",
                            help=f"extra options for the {stage} stage, one quoted string (see `dynofa {stage} -h`)")


def _passed(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The given options among ``names`` (attribute names), back as command-line words."""
    words: list[str] = []
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            words.append("--" + name.replace("_", "-"))
            words += [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return words


def run(args: argparse.Namespace) -> int:
    """Run the stages in order (train without ``--checkpoint``, else adapt), each parsed as its own ``dynofa``
    sub-command; print each stage's wall time."""
    from dynofa_ros.offline.cli import build_parser

    training = args.checkpoint is None
    if args.train_args and not training:
        raise ValueError("--train-args: the pipeline trains a supernet only without --checkpoint")
    if args.adapt_args and training:
        print("note: --adapt-args not used: the supernet trained on the dataset has its classes already")
    parse = build_parser().parse_args
    net = _passed(args, ("net", *(k for k in vars(args) if k.startswith("net_"))))
    source = _passed(args, ("data", "cache_dir", "image_size", "val_size"))
    data = [*source, *_passed(args, ("split_seed",))]
    trained = args.work / "train" / "supernet.pt"
    adapted = args.work / "supernet.pt"
    adapted.unlink(missing_ok=True)
    lut = args.work / "profile" / f"lut_{args.profile}.json"
    search = args.work / "search.json"
    backend = resolve_backend(args.backend, "cpu")
    # training holds out the validation split the later stages use: its seed is --split-seed
    first: dict[str, Callable[[], list[str]]] = (
        {"train": lambda: [*net, *source, "--seed", str(args.split_seed), "--out", str(trained.parent)]} if training
        else {"adapt": lambda: ["--checkpoint", str(args.checkpoint), *net, "--out", str(adapted), *data]})
    stages: dict[str, Callable[[], list[str]]] = {
        **first,
        "profile": lambda: [*checkpoint(), "--out", str(args.work / "profile"), "--profiles", args.profile,
                            "--backends", *dict.fromkeys([TORCH, backend])],
        "search": lambda: [*checkpoint(), "--lut", str(lut), "--backend", backend, "--out", str(search), *data,
                           *(["--candidates", str(args.candidates)] if args.candidates else [])],
        "build-library": lambda: [*checkpoint(), "--search", str(search), "--out", str(args.out), *data],
        "plot": lambda: ["--search", str(search), "--library", str(args.out / "library.json"),
                         "--out", str(args.plot or args.work / "pareto.png")],
    }

    def checkpoint() -> list[str]:  # the trained one, the adapted one when adapt wrote it, else the given one
        if training or adapted.exists():
            return ["--checkpoint", str(trained if training else adapted)]
        return ["--checkpoint", str(args.checkpoint), *net]

    times: dict[str, float] = {}
    for stage, argv in stages.items():
        words = argv() + shlex.split(getattr(args, f"{stage.replace('-', '_')}_args"))
        print(f"== dynofa {stage} {shlex.join(words)}", flush=True)
        sub = parse([stage, *words])
        start = time.perf_counter()
        rc = sub.func(sub)
        times[stage] = time.perf_counter() - start
        if rc:
            print(f"== {stage} failed (exit {rc}); stopping", file=sys.stderr)
            return rc
    print("== stage wall times: " + ", ".join(f"{s} {t / 60:.1f} min" for s, t in times.items()))
    return 0
