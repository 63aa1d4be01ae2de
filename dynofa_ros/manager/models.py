"""What the manager knows about applications and the board: level points, app specs, board model.

The controller never measures anything itself: it predicts with a :class:`BoardModel` (the simulated
board exposes one; a real board uses :class:`MeasuredModel`, from the library's measured latency) and
corrects online with a slowdown filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from dynofa_ros.platform.types import DomainInfo


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


@dataclass(frozen=True)
class MeasuredModel:
    """A :class:`BoardModel` of a real board from the levels' measured latency (no simulator).

    ``profiles`` maps each domain to the latency profile measured on it (``LevelPoint.latency_s`` key),
    taken at the domain's reference frequency ``ref_freq_hz`` (its top frequency; absent: no DVFS).
    Latency scales as ``ref / f`` (compute-bound frames); cores are not modelled. Power is an uncalibrated
    CMOS shape, ``idle_w + busy_w · util · (f / ref)³`` (dynamic power ∝ V²·f with V roughly ∝ f): the
    controller ranks settings with it, and its Kalman slowdown corrects the latency online.
    """

    profiles: dict[str, str]
    ref_freq_hz: dict[str, int]
    busy_w: float = 1.0
    idle_w: float = 0.0

    def __post_init__(self) -> None:
        if not (self.busy_w > 0 and math.isfinite(self.busy_w) and self.idle_w >= 0 and math.isfinite(self.idle_w)):
            raise ValueError(f"MeasuredModel needs busy_w > 0 and idle_w >= 0, got {self.busy_w}, {self.idle_w}")

    @classmethod
    def for_apps(cls, apps: Sequence[AppSpec], domains: Sequence[DomainInfo]) -> MeasuredModel:
        """Pick, per app domain, a latency profile every level of every app on it has (one named after the
        domain's kind, e.g. ``cpu-1t`` for a CPU, first); ValueError when the levels carry none."""
        infos = {d.name: d for d in domains}
        profiles: dict[str, str] = {}
        for name in sorted({a.domain for a in apps}):
            if name not in infos:
                raise ValueError(f"app domain {name!r} is not one of the board's {sorted(infos)}")
            levels = [lv for a in apps if a.domain == name for lv in a.levels]
            common = set.intersection(*(set(lv.latency_s) for lv in levels))
            if not common:
                raise ValueError(f"the levels run on {name!r} share no measured latency profile: measure them "
                                 "on this board (dynofa profile / library build) to manage it")
            profiles[name] = min(common, key=lambda p: (not p.startswith(infos[name].kind), p))
        ref = {n: infos[n].frequencies_hz[-1] for n in profiles if infos[n].frequencies_hz}
        return cls(profiles, ref)

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        profile = self.profiles.get(domain)
        if profile is None or profile not in level.latency_s:
            raise ValueError(f"level {level.name} has no measured latency for domain {domain!r} "
                             f"(profile {profile!r})")
        ref = self.ref_freq_hz.get(domain)
        return level.latency_s[profile] * (ref / freq_hz if ref and freq_hz > 0 else 1.0)

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        ref = self.ref_freq_hz.get(domain)
        x = freq_hz / ref if ref and freq_hz > 0 else 1.0
        return self.idle_w + self.busy_w * util * x**3


@dataclass(frozen=True)
class SplitModel:
    """A :class:`BoardModel` taking latency from one model and power from another (e.g. measured level
    latency on a simulated board whose frames are the host's real ones stretched by ``f_top / f``)."""

    latency: BoardModel
    power: BoardModel

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        return self.latency.latency_s(level, domain, freq_hz, cores)

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        return self.power.power_w(domain, freq_hz, util, cores)


def miss_probability(latency_s: float, limit_s: float, sigma: float) -> float:
    """P(k · ``latency_s`` > ``limit_s``) for a per-frame factor k ~ lognormal(-σ²/2, σ) (mean 1), the law of the
    simulated board's frame-time noise; with ``sigma`` 0, 1.0 when the latency is over the limit, else 0.0."""
    if sigma <= 0:
        return float(latency_s > limit_s)
    return 0.5 * math.erfc((math.log(limit_s / latency_s) + sigma * sigma / 2) / (sigma * math.sqrt(2)))


def expected_miss_rate(latency_s: float, target_s: float, period_s: float, sigma: float) -> float:
    """Expected misses per camera tick of an app alone on its domain whose frames start at its ticks: frames
    over ``target_s`` plus the ticks dropped because a frame outlasted the camera period (one per such frame),
    over the ticks (frames plus drops)."""
    late = miss_probability(latency_s, target_s, sigma)
    dropped = miss_probability(latency_s, period_s, sigma)
    return (late + dropped) / (1.0 + dropped)


def serve_order(priority: int, weight: float, app_id: str) -> tuple[float, float, str]:
    """Sort key of the order in which a shared domain serves apps: higher priority, then weight, first."""
    return (-priority, -weight, app_id)


def contention_factor(util_above: float) -> float:
    """Latency inflation of an app on a domain whose higher-ranked apps keep it busy ``util_above`` of the
    time (preemptive priority service: the app only gets the remaining share). Capped at 20×."""
    return 1.0 / max(0.05, 1.0 - util_above)


def levels_from_library(library: object, backend: str = "torch") -> tuple[LevelPoint, ...]:
    """Level points from a ``dynofa_ros.supernet.library.SubnetLibrary`` (duck-typed: ``.levels``), with the
    latency measured with ``backend`` where the library has it, else the eager one."""
    points = []
    for i, lv in enumerate(library.levels):  # type: ignore[attr-defined]
        if lv.top1 is None:
            raise ValueError(f"library level {lv.name!r} has no top1: evaluate the library before managing it")
        latency = {name: float(p.p50_s) for name, p in lv.latency_served(backend).items()}
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
