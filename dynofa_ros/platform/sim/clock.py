"""Clocks for the simulated board: simulated time driven by a harness, or wall time beside real inference."""

from __future__ import annotations

import time


class SimClock:
    """Simulated time: it moves only when the board is told to advance (``advance_to``/``idle``/``run_frame``)."""

    realtime = False

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = start_s

    def now(self) -> float:
        return self.t


class RealTimeClock:
    """Wall time since creation (monotonic); the board catches up to it on every call."""

    realtime = True

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0
