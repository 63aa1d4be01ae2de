"""Re-measure a library's levels on the machine at hand: new CPU latency records (``dynofa measure``).

Users run it on their own board (or on a quiet machine) so the manager plans with latency measured where
the network runs; profiles other than the measured ones (e.g. ``gpu``) are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dynofa_ros.offline.library_build import cpu_latency
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.library import SubnetLibrary
from dynofa_ros.supernet.serving import TORCH


def remeasure(library: SubnetLibrary, profiles: list[str], warmup: int, repeats: int, rounds: int,
              backends: Sequence[str] = (TORCH,)) -> SubnetLibrary:
    """A copy of ``library`` whose ``profiles`` latency records with ``backends`` are measured now, levels timed
    interleaved."""
    supernet, _ = load_supernet(library.checkpoint_path, library.spec)
    fresh = cpu_latency(supernet, [lv.arch for lv in library.levels], profiles, warmup, repeats, rounds, backends)
    levels = [dataclasses.replace(lv, latency=lv.latency_except(profiles, backends) + new)
              for lv, new in zip(library.levels, fresh, strict=True)]
    return dataclasses.replace(library, levels=levels)
