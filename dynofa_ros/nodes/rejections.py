"""Rejected inputs (commands, targets, reports, parameter sets), counted per cause and explained once (no rclpy).

A node calls :meth:`Rejections.reject` with the kind of input, the cause (the rule it broke, without the offending
value, so every NaN, negative or infinite latency is one cause) and the full reason. The first rejection of each
cause is logged at WARN with its reason; later ones of that cause are only counted, and the counts go on the node's
/diagnostics. Distinct causes never hide each other, as one throttled line for all of them would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

OTHER = "other causes"  # where new causes go once max_causes are held (a stream of made-up app ids)


def first_clause(reason: str) -> str:
    """The rule a validation error states, without the value: ``reason`` up to ``, got `` or ``; ``
    (the project's errors read ``<what> must be <rule>, got <value>`` or ``unknown app 'x'; managed apps: [...]``)."""
    return re.split(r", got |; ", reason, maxsplit=1)[0]


@dataclass
class Rejections:
    """Counts per (kind, cause); ``warn`` gets one line for the first rejection of each cause."""

    warn: Callable[[str], None]
    max_causes: int = 32
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def reject(self, kind: str, cause: str, reason: str) -> bool:
        """Count one rejected ``kind`` (e.g. ``PerformanceTarget``) for ``cause``; True when this logged it."""
        key = (kind, cause)
        if key not in self.counts and len(self.counts) >= self.max_causes:
            key = (kind, OTHER)
        n = self.counts[key] = self.counts.get(key, 0) + 1
        if n == 1:
            self.warn(f"rejected {kind}: {reason} (further rejections for this cause are counted on /diagnostics)")
        return n == 1

    def total(self, kind: str) -> int:
        """Rejections of ``kind`` so far, all causes."""
        return sum(n for (k, _), n in self.counts.items() if k == kind)

    def diagnostic_values(self) -> dict[str, int]:
        """``{"rejected <kind>: <cause>": count}`` for /diagnostics."""
        return {f"rejected {kind}: {cause}": n for (kind, cause), n in self.counts.items()}
