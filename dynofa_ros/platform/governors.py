"""Emulations of the Linux cpufreq / devfreq governors, used as baselines on the simulated board.

Each governor is a small stateful object: call ``next_frequency(domain, current_hz, utilisation, dt)``
once per harness period with the busy fraction of that period; it returns the frequency (Hz, a value of
``domain.frequencies_hz``) the kernel governor would set. Sampled governors average the utilisation they
are given and decide once per ``sampling_rate_s``; in between they return ``current_hz``. Tunables are
the kernel's sysfs names and defaults (Documentation/admin-guide/pm/cpufreq.rst, devfreq
governor_simpleondemand.c).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from dynofa_ros.platform.types import DomainInfo


def _table(domain: DomainInfo) -> tuple[int, ...]:
    if not domain.frequencies_hz:
        raise ValueError(f"domain {domain.name!r} lists no frequencies: a governor needs a table")
    return domain.frequencies_hz


def ceil_freq(table: tuple[int, ...], target: float) -> int:
    """Lowest table frequency >= target, clamped to the table (kernel CPUFREQ_RELATION_L)."""
    i = bisect.bisect_left(table, target - 0.5)
    return table[min(i, len(table) - 1)]


def floor_freq(table: tuple[int, ...], target: float) -> int:
    """Highest table frequency <= target, clamped to the table (kernel CPUFREQ_RELATION_H)."""
    i = bisect.bisect_right(table, target + 0.5) - 1
    return table[max(i, 0)]


def closest_freq(table: tuple[int, ...], target: float) -> int:
    """Table frequency closest to target (kernel CPUFREQ_RELATION_C)."""
    return min(table, key=lambda f: abs(f - target))


def _check_util(utilisation: float, dt: float) -> None:
    if not 0.0 <= utilisation <= 1.0:
        raise ValueError(f"utilisation must be in [0, 1], got {utilisation}")
    if dt < 0:
        raise ValueError(f"dt must be >= 0, got {dt}")


class Governor(ABC):
    """A frequency governor for one domain (keep one instance per domain: sampled ones hold state)."""

    name: ClassVar[str]

    @abstractmethod
    def next_frequency(self, domain: DomainInfo, current_hz: int, utilisation: float, dt: float) -> int:
        """Frequency to run at after a period ``dt`` (s) during which the domain was ``utilisation`` busy."""

    def reset(self) -> None:  # noqa: B027 - stateless governors have nothing to forget
        """Forget history (sampling accumulators, smoothed load)."""


@dataclass
class Performance(Governor):
    """Always the highest frequency."""

    name: ClassVar[str] = "performance"

    def next_frequency(self, domain: DomainInfo, current_hz: int, utilisation: float, dt: float) -> int:
        _check_util(utilisation, dt)
        return _table(domain)[-1]


@dataclass
class Powersave(Governor):
    """Always the lowest frequency."""

    name: ClassVar[str] = "powersave"

    def next_frequency(self, domain: DomainInfo, current_hz: int, utilisation: float, dt: float) -> int:
        _check_util(utilisation, dt)
        return _table(domain)[0]


@dataclass
class _Sampled(Governor):
    """Averages utilisation over ``dt`` calls and decides once per ``sampling_rate_s``."""

    sampling_rate_s: float = 0.01
    _busy: float = field(default=0.0, init=False, repr=False)
    _elapsed: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.sampling_rate_s <= 0:
            raise ValueError(f"sampling_rate_s must be > 0, got {self.sampling_rate_s}")

    def next_frequency(self, domain: DomainInfo, current_hz: int, utilisation: float, dt: float) -> int:
        _check_util(utilisation, dt)
        table = _table(domain)
        self._busy += utilisation * dt
        self._elapsed += dt
        if self._elapsed < self.sampling_rate_s * (1 - 1e-9):
            return current_hz
        load = self._busy / self._elapsed
        elapsed, self._busy, self._elapsed = self._elapsed, 0.0, 0.0
        return self._decide(table, current_hz, load, elapsed)

    @abstractmethod
    def _decide(self, table: tuple[int, ...], current_hz: int, load: float, elapsed: float) -> int:
        """One sample: ``load`` in [0, 1] averaged over the last ``elapsed`` seconds."""

    def reset(self) -> None:
        self._busy = self._elapsed = 0.0


@dataclass
class Ondemand(_Sampled):
    """cpufreq ondemand: above ``up_threshold`` % load jump to max (and hold it ``sampling_down_factor``
    samples), else f = f_min + load * (f_max - f_min), closest table step (RELATION_C)."""

    name: ClassVar[str] = "ondemand"
    up_threshold: int = 80
    sampling_down_factor: int = 1
    _hold: int = field(default=0, init=False, repr=False)

    def _decide(self, table: tuple[int, ...], current_hz: int, load: float, elapsed: float) -> int:
        if load * 100 > self.up_threshold:
            self._hold = self.sampling_down_factor - 1
            return table[-1]
        if self._hold > 0 and current_hz == table[-1]:
            self._hold -= 1
            return current_hz
        return closest_freq(table, table[0] + load * (table[-1] - table[0]))

    def reset(self) -> None:
        super().reset()
        self._hold = 0


@dataclass
class Conservative(_Sampled):
    """cpufreq conservative: above ``up_threshold`` raise the requested frequency by ``freq_step`` % of
    max (RELATION_H), below ``down_threshold`` lower it by the same (RELATION_L)."""

    name: ClassVar[str] = "conservative"
    up_threshold: int = 80
    down_threshold: int = 20
    freq_step: float = 5.0
    sampling_down_factor: int = 1
    _requested: float | None = field(default=None, init=False, repr=False)
    _down_skip: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.down_threshold < self.up_threshold <= 100:
            raise ValueError("conservative needs 0 <= down_threshold < up_threshold <= 100")

    def _decide(self, table: tuple[int, ...], current_hz: int, load: float, elapsed: float) -> int:
        step = self.freq_step / 100 * table[-1]
        req = self._requested
        if req is None or abs(req - current_hz) >= step:  # someone else changed the frequency
            req = float(current_hz)
        if load * 100 > self.up_threshold:
            self._down_skip = 0
            self._requested = min(float(table[-1]), req + step)
            return floor_freq(table, self._requested)
        self._down_skip += 1
        if self._down_skip < self.sampling_down_factor:
            self._requested = req
            return current_hz
        self._down_skip = 0
        if load * 100 < self.down_threshold:
            self._requested = max(float(table[0]), req - step)
            return ceil_freq(table, self._requested)
        self._requested = req
        return current_hz

    def reset(self) -> None:
        super().reset()
        self._requested, self._down_skip = None, 0


@dataclass
class Schedutil(_Sampled):
    """schedutil: f = 1.25 * f_max * util / max, rounded up to a table step (RELATION_L).

    ``util`` is frequency-invariant (busy fraction * current / max, as the scheduler's capacity-scaled
    PELT signal) and smoothed with the PELT half-life; ``sampling_rate_s`` plays ``rate_limit_us``.
    Set ``pelt_halflife_s = 0`` to use the period's utilisation as is.
    """

    name: ClassVar[str] = "schedutil"
    headroom: float = 1.25
    pelt_halflife_s: float = 0.032
    _util: float | None = field(default=None, init=False, repr=False)

    def _decide(self, table: tuple[int, ...], current_hz: int, load: float, elapsed: float) -> int:
        inv = load * current_hz / table[-1]
        if self._util is None or self.pelt_halflife_s <= 0:
            self._util = inv
        else:
            self._util += (inv - self._util) * (1 - 0.5 ** (elapsed / self.pelt_halflife_s))
        return ceil_freq(table, self.headroom * table[-1] * self._util)

    def reset(self) -> None:
        super().reset()
        self._util = None


@dataclass
class SimpleOndemand(_Sampled):
    """devfreq simple_ondemand (Jetson GPU): busy above ``upthreshold`` % -> max; above
    ``upthreshold - downdifferential`` keep; else f = cur * busy / (upthreshold - downdifferential/2),
    rounded up to a table step."""

    name: ClassVar[str] = "simple_ondemand"
    sampling_rate_s: float = 0.025
    upthreshold: int = 90
    downdifferential: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.downdifferential < self.upthreshold <= 100:
            raise ValueError("simple_ondemand needs 0 < downdifferential < upthreshold <= 100")

    def _decide(self, table: tuple[int, ...], current_hz: int, load: float, elapsed: float) -> int:
        busy = load * 100
        if busy > self.upthreshold:
            return table[-1]
        if busy > self.upthreshold - self.downdifferential:
            return current_hz
        return ceil_freq(table, current_hz * busy / (self.upthreshold - self.downdifferential / 2))


GOVERNORS: dict[str, type[Governor]] = {g.name: g for g in
                                        (Performance, Powersave, Ondemand, Conservative, Schedutil, SimpleOndemand)}


def make_governor(name: str, **tunables: float) -> Governor:
    """A governor by its kernel name, with tunables as keyword arguments."""
    if name not in GOVERNORS:
        raise ValueError(f"unknown governor {name!r}; known: {sorted(GOVERNORS)}")
    return GOVERNORS[name](**tunables)
