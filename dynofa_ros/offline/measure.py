"""``dynofa measure``: re-measure a library's levels on the machine at hand and update their CPU latency.

Users run it on their own board (or on a quiet machine) so the manager plans with latency measured where
the network runs; profiles other than the measured ones (e.g. ``gpu``) are kept.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from dynofa_ros.offline.library_build import add_timing_arguments, cpu_latency
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.library import SubnetLibrary, default_library_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", type=Path, default=None, help="library.json (default: the shipped one)")
    add_timing_arguments(parser)


def remeasure(library: SubnetLibrary, profiles: list[str], warmup: int, repeats: int,
              rounds: int) -> SubnetLibrary:
    """A copy of ``library`` whose ``profiles`` latency records are measured now, levels timed interleaved."""
    supernet, _ = load_supernet(library.checkpoint_path, library.spec)
    fresh = cpu_latency(supernet, [lv.arch for lv in library.levels], profiles, warmup, repeats, rounds)
    levels = [dataclasses.replace(lv, latency=lv.latency_except(profiles) + new)
              for lv, new in zip(library.levels, fresh, strict=True)]
    return dataclasses.replace(library, levels=levels)


def run(args: argparse.Namespace) -> int:
    path = args.library or default_library_path()
    library = remeasure(SubnetLibrary.load(path), args.profiles, args.warmup, args.repeats, args.rounds)
    library.save(path)
    for lv in library.levels:
        cells = ", ".join(f"{p.profile} {p.p50_s * 1e3:.2f} ms (p90 {p.p90_s * 1e3:.2f})" for p in lv.latency
                          if p.profile in args.profiles)
        print(f"{lv.name}: {cells}")
    print(f"updated {path}")
    return 0
