"""``dynofa measure``: re-measure a library's levels on this machine and update their CPU latency records."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynofa_ros.offline.commands.options import add_timing_arguments
from dynofa_ros.offline.measure import remeasure
from dynofa_ros.supernet.library import SubnetLibrary, library_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa measure``."""
    parser.add_argument("--library", type=Path, default=None,
                        help="library.json, or a shipped model: mbv3, vit (default: mbv3)")
    add_timing_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Re-measure the levels, save the library and print their new latency."""
    path = library_path(args.library or "")
    library = remeasure(SubnetLibrary.load(path), args.profiles, args.warmup, args.repeats, args.rounds,
                        args.backends)
    library.save(path)
    for lv in library.levels:
        cells = ", ".join(f"{p.profile} {p.backend} {p.p50_s * 1e3:.2f} ms (p90 {p.p90_s * 1e3:.2f})"
                          for p in lv.latency if p.profile in args.profiles and p.backend in args.backends)
        print(f"{lv.name}: {cells}")
    print(f"updated {path}")
    return 0
