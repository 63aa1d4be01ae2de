"""Let real work feel a simulated board: DVFS slowdown of real inference, app duty cycle as board load.

Pure helpers fed with plain records; the nodes call them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from dynofa_ros.platform.types import PlatformState


def dvfs_slowdown(state: PlatformState, domain: str) -> float:
    """``f_max / f_cur`` of ``domain`` on a simulated board (>= 1); 1.0 for a real board, an unknown domain
    or a domain without a current frequency. ``f_max`` is the top of the frequencies it offers now."""
    dom = state.domains.get(domain)
    if not state.simulated or dom is None or dom.cur_hz <= 0:
        return 1.0
    top = max(dom.available_hz, default=dom.max_hz) or dom.cur_hz
    return max(1.0, top / dom.cur_hz)


def stretch_frame(start: float, slowdown: float, clock: Callable[[], float] = time.perf_counter,
                  sleep: Callable[[float], None] = time.sleep) -> float:
    """Sleep so the frame begun at ``start`` (on ``clock``) lasts ``slowdown`` times what it took; return
    its stretched latency (s). No sleep when ``slowdown`` <= 1."""
    if not math.isfinite(slowdown):
        raise ValueError(f"slowdown must be finite, got {slowdown}")
    latency = clock() - start
    if slowdown > 1.0:
        sleep(latency * (slowdown - 1.0))
        latency = clock() - start
    return latency


class DutyCycleLoad:
    """Board load of one domain from its apps' duty cycles (smoothed latency × frame rate, each 0..1)."""

    def __init__(self) -> None:
        self.duty: dict[str, float] = {}

    def update(self, app_id: str, latency_s: float, throughput_hz: float) -> float | None:
        """Record ``app_id``'s latest report; the domain's total load (0..1), or None when the report carries
        no usable numbers (NaN/inf/negative) and the load is unchanged."""
        duty = latency_s * throughput_hz
        if not math.isfinite(duty) or latency_s < 0 or throughput_hz < 0:
            return None
        self.duty[app_id] = min(1.0, duty)
        return self.total

    @property
    def total(self) -> float:
        """Sum of the apps' duty cycles, capped at 1."""
        return min(1.0, sum(self.duty.values()))
