"""The demo's targets, placed between the levels' frame times measured on the machine that runs it.

Fixed targets in milliseconds show nothing on a machine much faster or slower than the one they were chosen
on: every level meets them, or none does. :func:`demo_targets` derives them from each level's frame time
(preprocessing + inference at the top frequency, measured at start-up) and its expected top-1:

- at the start, the target is ``slack`` times the most accurate level's time and the accuracy floor admits
  the two most accurate levels: both meet the target at full speed, so the manager has room to lower the
  frequency and save energy;
- after the target change, the target is ``slack`` times the fastest level's time and the floor admits every
  level: the most accurate ones no longer fit, so the manager moves to faster levels and picks the frequency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_SLACK = 3.0
FLOOR_MARGIN = 1e-4  # floors sit this far below a level's top-1, which a float32 message keeps admitted


@dataclass(frozen=True)
class DemoTarget:
    """One latency target and accuracy floor, and which levels it was derived from."""

    max_latency_s: float
    min_accuracy: float
    why: str

    def __str__(self) -> str:
        return f"{self.max_latency_s * 1e3:.2f} ms, top-1 >= {self.min_accuracy:.2%}"

    def given(self, max_latency_ms: float | None, min_accuracy: float | None) -> DemoTarget:
        """This target with the values a user gave in place of the derived ones (None: keep)."""
        return DemoTarget(self.max_latency_s if max_latency_ms is None else max_latency_ms / 1e3,
                          self.min_accuracy if min_accuracy is None else min_accuracy,
                          self.why if max_latency_ms is None and min_accuracy is None else "given")


def demo_targets(times_s: Sequence[float], top1: Sequence[float | None],
                 slack: float = DEFAULT_SLACK) -> tuple[DemoTarget, DemoTarget]:
    """The initial target and the one after the change, for levels ordered from fastest to most accurate
    (``times_s`` measured here, ``top1`` the library's expected top-1, None where it has none)."""
    if not times_s or len(times_s) != len(top1):
        raise ValueError(f"need one time and one top-1 per level, got {len(times_s)} and {len(top1)}")
    if not all(math.isfinite(t) and t > 0 for t in times_s):
        raise ValueError(f"level times must be positive and finite, got {list(times_s)}")
    if not slack > 1.0:
        raise ValueError(f"slack must be > 1, got {slack}")
    top, second = len(times_s) - 1, max(0, len(times_s) - 2)
    floor = 0.0 if top1[second] is None else max(0.0, float(top1[second]) - FLOOR_MARGIN)
    lowest = 0.0 if top1[0] is None else max(0.0, float(top1[0]) - FLOOR_MARGIN)
    return (DemoTarget(slack * times_s[top], floor,
                       f"{slack:g} x L{top}'s {times_s[top] * 1e3:.2f} ms; top-1 of L{second} and above"),
            DemoTarget(slack * times_s[0], lowest,
                       f"{slack:g} x L0's {times_s[0] * 1e3:.2f} ms; any level"))
