"""``dynofa plot``: plot val accuracy vs CPU latency, the Pareto front and the library's levels."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynofa_ros.offline.library_build import load_search
from dynofa_ros.offline.plots import plot_pareto
from dynofa_ros.supernet.library import SubnetLibrary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa plot``."""
    parser.add_argument("--search", type=Path, default=Path("runs/offline/search.json"),
                        help="`dynofa search` result (default: %(default)s)")
    parser.add_argument("--library", type=Path, help="library.json whose levels to mark (test top-1)")
    parser.add_argument("--out", type=Path, default=Path("runs/pareto.png"), help="PNG (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Write the plot."""
    library = SubnetLibrary.load(args.library, verify=False) if args.library else None
    print(f"wrote {plot_pareto(load_search(args.search), library, args.out)}")
    return 0
