"""What the manager knows about applications and the board: level points, app specs, board model.

The controller never measures anything itself: it predicts with a :class:`BoardModel` (the simulated
board exposes one; a real board uses one calibrated offline) and corrects online with a slowdown filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LevelPoint:
    """One level of an app's subnet library, as the manager sees it.

    ``latency_s`` maps a profile name (e.g. ``"xavier-gpu"``, ``"cpu-1t"``) to the measured median.
    """

    index: int
    name: str
    top1: float
    macs: float
    latency_s: dict[str, float]

    def __post_init__(self) -> None:
        if not 0.0 <= self.top1 <= 1.0:
            raise ValueError(f"level {self.name}: top1 must be in [0, 1], got {self.top1}")
        if not (self.macs > 0 and math.isfinite(self.macs)):
            raise ValueError(f"level {self.name}: macs must be positive, got {self.macs}")


@dataclass(frozen=True)
class AppSpec:
    """A managed application: where it runs, how often frames come, which levels it may run."""

    app_id: str
    domain: str  # DVFS domain name the app's network runs on ("gpu", "cpu0", ...)
    levels: tuple[LevelPoint, ...]
    rate_hz: float = 30.0

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError(f"app {self.app_id!r} has no levels")
        if [lv.index for lv in self.levels] != list(range(len(self.levels))):
            raise ValueError(f"app {self.app_id!r}: level indices must be 0..{len(self.levels) - 1} in order")
        if not (self.rate_hz > 0 and math.isfinite(self.rate_hz)):
            raise ValueError(f"app {self.app_id!r}: rate_hz must be positive, got {self.rate_hz}")


class BoardModel(Protocol):
    """Predictions the controller needs; the simulated board implements them from its own physics."""

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        """Isolated latency of one frame of ``level`` on ``domain`` at ``freq_hz`` with ``cores`` online."""

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        """Power drawn by ``domain`` at ``freq_hz`` when busy a fraction ``util`` of the time."""


def serve_order(priority: int, weight: float, app_id: str) -> tuple[float, float, str]:
    """Sort key of the order in which a shared domain serves apps: higher priority, then weight, first."""
    return (-priority, -weight, app_id)


def contention_factor(util_above: float) -> float:
    """Latency inflation of an app on a domain whose higher-ranked apps keep it busy ``util_above`` of the
    time (preemptive priority service: the app only gets the remaining share). Capped at 20×."""
    return 1.0 / max(0.05, 1.0 - util_above)


def levels_from_library(library: object) -> tuple[LevelPoint, ...]:
    """Level points from a ``dynofa_ros.supernet.library.SubnetLibrary`` (duck-typed: ``.levels``)."""
    points = []
    for i, lv in enumerate(library.levels):  # type: ignore[attr-defined]
        if lv.top1 is None:
            raise ValueError(f"library level {lv.name!r} has no top1: evaluate the library before managing it")
        latency = {p.profile: float(p.p50_s) for p in lv.latency}
        points.append(LevelPoint(i, lv.name, float(lv.top1), float(lv.macs), latency))
    if not points:
        raise ValueError("library has no levels")
    return tuple(points)


def synthetic_levels() -> tuple[LevelPoint, ...]:
    """Seven plausible CIFAR-10 levels (MobileNetV3 subnets at 40-64 px) for tests and for the benchmark
    when no shipped library exists. Accuracies and MACs are made up, not measured; say so in outputs."""
    table = [  # name, top1, MMACs, cpu-1t latency (s)
        ("L0", 0.842, 6.0, 0.0040),
        ("L1", 0.861, 9.0, 0.0055),
        ("L2", 0.874, 13.0, 0.0072),
        ("L3", 0.884, 18.0, 0.0095),
        ("L4", 0.892, 25.0, 0.0125),
        ("L5", 0.898, 34.0, 0.0160),
        ("L6", 0.903, 46.0, 0.0210),
    ]
    return tuple(
        LevelPoint(i, name, top1, mmacs * 1e6, {"cpu-1t": lat}) for i, (name, top1, mmacs, lat) in enumerate(table)
    )
