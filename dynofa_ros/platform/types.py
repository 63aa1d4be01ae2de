"""Plain records shared by every platform backend and by the manager.

Units: frequencies in Hz, power in W, temperatures in degrees Celsius, time in s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DomainKind = Literal["cpu", "gpu", "emc"]


@dataclass(frozen=True)
class DomainInfo:
    """A DVFS domain found by discovery (a cpufreq policy, a GPU devfreq node, the EMC)."""

    name: str  # e.g. "cpu0" (policy0), "gpu", "emc"
    kind: DomainKind
    frequencies_hz: tuple[int, ...]  # ascending; may be empty when the hardware lists none
    cores: tuple[int, ...] = ()  # CPU ids in this domain (cpu domains only)
    writable: bool = False


@dataclass
class DomainState:
    name: str
    kind: DomainKind
    cur_hz: int
    min_hz: int
    max_hz: int
    available_hz: tuple[int, ...] = ()
    utilisation: float = float("nan")  # 0..1, nan when unknown
    online_cores: int = 0
    governor: str = ""


@dataclass
class PlatformState:
    """One snapshot of the board."""

    stamp_s: float
    simulated: bool
    domains: dict[str, DomainState] = field(default_factory=dict)
    power_w: dict[str, float] = field(default_factory=dict)  # per rail; "VDD_IN" = board total on Jetson
    temperatures_c: dict[str, float] = field(default_factory=dict)  # per thermal zone
    throttled: dict[str, bool] = field(default_factory=dict)  # per domain or zone
    energy_j: float = float("nan")  # cumulative board energy when known
    board_power_w: float = float("nan")  # board power when known
    power_source: str = ""  # where board_power_w and energy_j come from: "VDD_IN", "sum of rails A+B", "rapl:psys"


@dataclass(frozen=True)
class DvfsSetting:
    """A request for one domain; ``None`` leaves that knob unchanged."""

    domain: str
    freq_hz: int | None = None
    online_cores: int | None = None


@dataclass
class ApplyResult:
    applied: list[DvfsSetting] = field(default_factory=list)
    refused: list[tuple[DvfsSetting, str]] = field(default_factory=list)  # (setting, reason)

    @property
    def ok(self) -> bool:
        return not self.refused
