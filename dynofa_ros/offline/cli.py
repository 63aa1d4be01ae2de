"""``dynofa``: build a Dynamic-OFA subnet library for your board, from a supernet and a dataset.

The stages, in order (each a sub-command; ``dynofa pipeline`` chains train or adapt to plot)::

    data -> (train) -> adapt -> profile -> search -> build-library -> plot ; later: calibrate, measure, export

For the published Once-for-All ImageNet supernet and your own dataset, for example::

    dynofa pipeline --net ofa_mbv3_d234_e346_k357_w1.2 --checkpoint ofa_w12.pth --data ~/data/mydata

``adapt`` labels the supernet with the dataset's classes (fitting a new classifier when their number differs),
``profile`` builds CPU latency predictors per serving backend (torch: a per-layer LUT), ``search`` fits an
accuracy predictor and runs an evolutionary search under a sweep of limits on the serving backend's latency,
``build-library`` calibrates and fits heads (MobileNetV3 levels; elastic ViT ones have no batch norm), tests and
times the chosen levels and writes the library the perception node loads.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One sub-command, and one line of help; its ``add_arguments``/``run`` are in its module of
    :mod:`dynofa_ros.offline.commands` (named after it, ``-`` as ``_``)."""

    name: str
    help: str

    @property
    def module(self) -> str:
        """The sub-command's module."""
        return f"dynofa_ros.offline.commands.{self.name.replace('-', '_')}"

    def functions(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        """``(add_arguments, run)`` of the sub-command."""
        mod = importlib.import_module(self.module)
        return mod.add_arguments, mod.run


COMMANDS = (
    Command("data", "decode a dataset into the data cache and show what it holds"),
    Command("train", "train the supernet (sandwich rule, in-place distillation)"),
    Command("adapt", "give a supernet the dataset's classes: their names, and a new classifier when their number "
            "differs"),
    Command("profile", "build CPU latency predictors per serving backend (torch: per-layer LUT) and report their "
            "error on held-out measured subnets"),
    Command("search", "accuracy predictor + evolutionary search under a sweep of latency limits; Pareto front"),
    Command("build-library", "calibrate and fit heads (a family with batch norm), test and re-measure the chosen "
            "levels; write library.json, supernet.pt (bn_stats.pt, heads.pt)"),
    Command("plot", "plot val accuracy vs CPU latency, the Pareto front and the levels"),
    Command("pipeline", "run adapt -> profile -> search -> build-library -> plot from a checkpoint and a dataset "
            "(without --checkpoint: train -> profile -> ..., a fresh --net supernet)"),
    Command("evaluate", "evaluate sub-networks (BN recalibrated) on a split"),
    Command("calibrate", "recalibrate the BN statistics of a library's levels (bn_stats.pt), refit their classifier "
            "heads (heads.pt) and re-test their top-1 (library.json)"),
    Command("measure", "re-measure a library's levels on this machine and update their CPU latency records"),
    Command("export", "prepare a library's levels for a serving backend (ONNX export, cached) and compare them "
            "with the eager levels on real images"),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dynofa`` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="dynofa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        add_arguments, run = cmd.functions()
        sub = subs.add_parser(cmd.name, help=cmd.help, description=cmd.help[0].upper() + cmd.help[1:] + ".")
        add_arguments(sub)
        sub.set_defaults(func=run)
    return parser


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and any(
        s in str(exc) for s in ("DefaultCPUAllocator", "out of memory", "CUDA out of memory")))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the sub-command; problems with the inputs, and running out of memory, exit 2 with
    one clear line."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"dynofa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        print(f"dynofa {args.command}: error: out of memory ({str(exc).splitlines()[0][:160]}): lower the batch "
              "option (--tune-bn-batch) or the images held (--max-fit-images, --image-size)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
