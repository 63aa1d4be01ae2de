"""Thermal zones: ``/sys/class/thermal/thermal_zoneN/{type,temp}`` (m°C) and their trip points.

Bogus readings are dropped: anything outside ``VALID_RANGE_C`` and the Jetson PMIC-Die zone, which
always reads a constant 100 °C. The range keeps real cold readings (a board in a cold chamber or
outdoors in winter reads -45 °C or -51 °C; parts are rated down to -40 °C, military ones -55 °C)
and rejects the sentinels: Tegra sensors that are off or power-gated read -256 °C, absolute-zero
placeholders -273 °C; above 150 °C silicon is past its absolute maximum rating. A zone whose temperature reaches a
passive, hot or critical trip point counts as throttling (active trips only start fans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dynofa_ros.platform import sysfs

THERMAL_CLASS = "/sys/class/thermal"
VALID_RANGE_C = (-100.0, 150.0)  # °C, inclusive
THROTTLING_TRIPS = ("passive", "hot", "critical")
CONSTANT_BOGUS = {"PMIC-Die": 100.0}  # zone type -> the constant value it reports


@dataclass(frozen=True)
class ThermalZone:
    name: str  # the zone type, made unique with the zone number when types repeat
    temp_file: Path
    throttle_trips_c: tuple[float, ...]  # passive/hot/critical trip temperatures, ascending

    def read_c(self) -> float | None:
        """Temperature in °C, or None when unreadable or bogus."""
        milli = sysfs.read_optional_int(self.temp_file)
        if milli is None:
            return None
        temp = milli / 1000.0
        base = self.name.split("#", 1)[0]
        if not VALID_RANGE_C[0] <= temp <= VALID_RANGE_C[1] or CONSTANT_BOGUS.get(base) == temp:
            return None
        return temp

    def tripped(self, temp_c: float) -> bool:
        return bool(self.throttle_trips_c) and temp_c >= self.throttle_trips_c[0]


def _trips(zone: Path) -> tuple[float, ...]:
    temps = []
    for type_file in zone.glob("trip_point_*_type"):
        kind = sysfs.read_optional(type_file)
        milli = sysfs.read_optional_int(type_file.with_name(type_file.name.replace("_type", "_temp")))
        if kind in THROTTLING_TRIPS and milli is not None and 0 < milli / 1000.0 <= VALID_RANGE_C[1]:
            temps.append(milli / 1000.0)
    return tuple(sorted(temps))


def discover_zones(root: Path) -> list[ThermalZone]:
    """All thermal zones with a type and a temp file, in zone-number order."""
    base = sysfs.under(root, THERMAL_CLASS)
    entries = []
    for zone in base.iterdir() if base.is_dir() else ():
        m = re.fullmatch(r"thermal_zone(\d+)", zone.name)
        kind = sysfs.read_optional(zone / "type") if m else None
        if m and kind and (zone / "temp").exists():
            entries.append((int(m.group(1)), kind, zone))
    entries.sort()
    counts: dict[str, int] = {}
    for _, kind, _ in entries:
        counts[kind] = counts.get(kind, 0) + 1
    return [ThermalZone(name=kind if counts[kind] == 1 else f"{kind}#{n}", temp_file=zone / "temp",
                        throttle_trips_c=_trips(zone)) for n, kind, zone in entries]


def read_temperatures(zones: list[ThermalZone]) -> tuple[dict[str, float], dict[str, bool]]:
    """Valid temperatures (°C) and, per zone, whether a throttling trip point is crossed."""
    temps: dict[str, float] = {}
    tripped: dict[str, bool] = {}
    for zone in zones:
        t = zone.read_c()
        if t is not None:
            temps[zone.name] = t
            tripped[zone.name] = zone.tripped(t)
    return temps, tripped
