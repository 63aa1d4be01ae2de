"""Thermal guard: keep every zone below its trip point by capping domain frequencies ahead of time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ThermalGuard:
    """Per-domain frequency caps (as indices into the domain's ascending frequency list).

    Each period the guard predicts every zone's temperature ``horizon_s`` ahead from its smoothed slope;
    when the prediction reaches ``trip - margin_c`` it lowers the caps of the domains that heat that zone
    by one step; when the zone is ``release_c`` below that line and not rising it raises them one step.
    A zone heats the domains ``zone_domains`` names for it; without an entry, the domains whose kind
    appears in its name (``"GPU-therm"`` → gpu domains); failing both, every managed domain.
    """

    trip_points_c: dict[str, float]
    zone_domains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    margin_c: float = 2.0
    release_c: float = 1.5
    horizon_s: float = 5.0
    slope_smoothing: float = 0.3
    caps: dict[str, int] = field(default_factory=dict)
    _last: dict[str, tuple[float, float]] = field(default_factory=dict)
    _slope: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for zone, trip in self.trip_points_c.items():
            if not math.isfinite(trip):
                raise ValueError(f"trip point of zone {zone!r} must be finite, got {trip}")
        if self.margin_c < 0 or self.release_c < 0 or self.horizon_s < 0:
            raise ValueError("ThermalGuard margin_c, release_c and horizon_s must be >= 0")

    def predicted_c(self, zone: str, temp_c: float) -> float:
        return temp_c + max(0.0, self._slope.get(zone, 0.0)) * self.horizon_s

    def update(
        self, stamp_s: float, temperatures_c: dict[str, float], domains: dict[str, tuple[str, int]]
    ) -> dict[str, int]:
        """Fold in a temperature reading; ``domains`` maps name → (kind, number of frequencies).

        Returns the caps (highest allowed frequency index) of every managed domain.
        """
        for name, (_, n) in domains.items():
            self.caps.setdefault(name, n - 1)
        lower: set[str] = set()
        raise_ok = set(domains)
        for zone, trip in self.trip_points_c.items():
            temp = temperatures_c.get(zone)
            if temp is None or not math.isfinite(temp):
                continue
            self._track_slope(zone, stamp_s, temp)
            heated = (set(self.zone_domains.get(zone, ())) & set(domains)
                      or {n for n, (kind, _) in domains.items() if kind in zone.lower()} or set(domains))
            line = trip - self.margin_c
            pred = self.predicted_c(zone, temp)
            if pred >= line:
                lower |= heated
            if pred >= line - self.release_c or self._slope.get(zone, 0.0) > 0.05:
                raise_ok -= heated
        for name, (_, n) in domains.items():
            if name in lower:
                self.caps[name] = max(0, self.caps[name] - 1)
            elif name in raise_ok:
                self.caps[name] = min(n - 1, self.caps[name] + 1)
        return dict(self.caps)

    def hot(self, domain: str, n_freqs: int) -> bool:
        """True while ``domain`` is capped below its top frequency."""
        return self.caps.get(domain, n_freqs - 1) < n_freqs - 1

    def _track_slope(self, zone: str, stamp_s: float, temp: float) -> None:
        last = self._last.get(zone)
        self._last[zone] = (stamp_s, temp)
        if last is None or stamp_s <= last[0]:
            return
        slope = (temp - last[1]) / (stamp_s - last[0])
        prev = self._slope.get(zone, slope)
        self._slope[zone] = prev + self.slope_smoothing * (slope - prev)
