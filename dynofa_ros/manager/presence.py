"""Whether an app is managed: has its resource manager spoken lately? (No ROS: the perception node calls it.)

The manager speaks once per control period (a ``ManagerHeartbeat`` naming the app). Silence is counted from the
last heartbeat, or from the first :meth:`ManagerWatch.check` before any, so the time a process needs to start
and spin does not count as an absence.
"""

from __future__ import annotations

import math


class ManagerWatch:
    """Managed while the manager was heard within ``timeout_s`` (0 = always managed); times on any monotonic
    clock."""

    def __init__(self, timeout_s: float) -> None:
        if not math.isfinite(timeout_s) or timeout_s < 0:
            raise ValueError(f"manager timeout must be finite and >= 0 (0 = off), got {timeout_s}")
        self.timeout_s = timeout_s
        self.last_heard: float | None = None
        self.managed = True

    def silent_for(self, now: float) -> float:
        """Seconds since the manager last spoke (since the first check when it never did)."""
        return 0.0 if self.last_heard is None else max(0.0, now - self.last_heard)

    def heard(self, now: float) -> bool:
        """The manager spoke; True when this ends an absence."""
        self.last_heard = now
        back, self.managed = not self.managed, True
        return back

    def check(self, now: float) -> bool:
        """True when the manager has just gone silent for longer than ``timeout_s``."""
        if self.last_heard is None:
            self.last_heard = now
        if not self.timeout_s or not self.managed or self.silent_for(now) <= self.timeout_s:
            return False
        self.managed = False
        return True
