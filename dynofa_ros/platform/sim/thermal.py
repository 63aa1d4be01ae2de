"""Thermal RC model with step_wise passive throttling.

A heat-sink node follows ``ambient + R_sink * P_board`` with time constant ``tau_sink``; each zone
follows ``T_sink + R_zone * P_zone`` with its own time constant. Updates are exact for power held
constant over a step, so any step length is stable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from dynofa_ros.platform.sim.config import BoardConfig, DomainConfig


class ThermalModel:
    def __init__(self, config: BoardConfig, ambient_c: float) -> None:
        self.config = config.thermal
        self.ambient_c = ambient_c
        self.sink_c = ambient_c
        self.zone_c = {z.name: ambient_c for z in self.config.zones}
        self.cooling_state = {z.name: 0 for z in self.config.zones}

    def step(self, dt: float, domain_power: Mapping[str, float], board_power_w: float) -> None:
        """Advance temperatures by ``dt`` seconds of constant power."""
        if dt <= 0:
            return
        c = self.config
        target = self.ambient_c + c.sink_r_c_per_w * board_power_w
        self.sink_c = target + (self.sink_c - target) * math.exp(-dt / c.sink_tau_s)
        for z in c.zones:
            zt = self.sink_c + z.r_c_per_w * sum(domain_power.get(d, 0.0) for d in z.heated_by)
            self.zone_c[z.name] = zt + (self.zone_c[z.name] - zt) * math.exp(-dt / z.tau_s)

    def poll(self) -> None:
        """One step_wise governor pass: +1 cooling state above trip, -1 once below trip - hysteresis."""
        c = self.config
        for z in c.zones:
            t, s = self.zone_c[z.name], self.cooling_state[z.name]
            if t > z.trip_c:
                self.cooling_state[z.name] = min(c.max_cooling_state, s + 1)
            elif t < z.trip_c - c.hysteresis_c:
                self.cooling_state[z.name] = max(0, s - 1)

    def throttled(self, zone: str) -> bool:
        return self.cooling_state[zone] > 0

    def cap_hz(self, domain: DomainConfig, max_hz: int) -> int:
        """Hardware frequency cap of a domain under its zone's cooling state (``max_hz`` when cool)."""
        state = self.cooling_state[domain.zone]
        if state == 0:
            return max_hz
        limit = max_hz * (1.0 - state * self.config.throttle_step)
        below = [f for f in domain.frequencies_hz if f <= limit]
        return below[-1] if below else domain.frequencies_hz[0]
