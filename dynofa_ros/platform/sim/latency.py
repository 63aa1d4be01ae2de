"""DNN work model: t = overhead + cycles / f, with Amdahl scaling over CPU threads.

A frame's work is held in a :class:`DnnWork`, built directly or from a level's MACs and the board's
effective MACs per cycle (:func:`xavier_work`, Xavier-NX-like absolute numbers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from dynofa_ros.platform.sim.config import BoardConfig
from dynofa_ros.platform.types import DomainKind


@dataclass(frozen=True)
class DnnWork:
    """Work of one inference frame on one kind of processor."""

    kind: DomainKind
    cycles: float  # compute cycles of one thread doing all of the work
    overhead_s: float = 0.0  # frequency-independent time: memory stalls, kernel launches, framework
    parallel_fraction: float = 1.0  # Amdahl fraction of the cycles that spreads over threads
    macs: float = math.nan  # MACs per frame when known (needed by scaled_to)

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "gpu"):
            raise ValueError(f"work kind must be cpu or gpu, got {self.kind!r}")
        if not (self.cycles >= 0 and self.overhead_s >= 0 and self.cycles + self.overhead_s > 0):
            raise ValueError(f"work needs cycles >= 0, overhead_s >= 0, not both 0: {self}")
        if not 0.0 <= self.parallel_fraction <= 1.0:
            raise ValueError(f"parallel_fraction must be in [0, 1], got {self.parallel_fraction}")

    def scaled_to(self, macs: float) -> DnnWork:
        """The same per-MAC cost for another level of ``macs`` MACs (overhead unchanged)."""
        if not (self.macs > 0 and macs > 0):
            raise ValueError("scaled_to needs this work's macs and the target macs to be > 0")
        return replace(self, cycles=self.cycles * macs / self.macs, macs=macs)


def xavier_work(macs: float, kind: DomainKind, config: BoardConfig) -> DnnWork:
    """Xavier-NX-like work from MACs and the board's effective MACs/cycle (see the YAML derivation)."""
    if not macs > 0:
        raise ValueError(f"macs must be > 0, got {macs}")
    k = config.latency[kind]
    return DnnWork(kind, macs / k.macs_per_cycle, k.overhead_s, k.parallel_fraction, float(macs))


def frame_time(work: DnnWork, placement: Sequence[tuple[float, int, float]]) -> float:
    """Seconds to run ``work`` on ``placement``: one ``(freq_hz, threads, share)`` per domain used.

    ``share`` in (0, 1] is the fraction of its threads' time the frame gets (processor sharing). The
    serial part runs on the fastest thread, the parallel part is split evenly and waits for the slowest.
    """
    if not placement:
        raise ValueError("placement is empty: no online cores for this frame")
    speeds = [f * s for f, n, s in placement]
    threads = sum(n for _, n, _ in placement)
    if min(speeds) <= 0 or threads < 1:
        raise ValueError(f"placement needs positive frequency, share and threads: {placement}")
    p = work.parallel_fraction
    serial = work.cycles * (1.0 - p) / max(speeds)
    parallel = work.cycles * p / (threads * min(speeds))
    return work.overhead_s / min(s for _, _, s in placement) + serial + parallel
