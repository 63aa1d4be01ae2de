"""Helpers for the node tests: spin an executor until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable


def spin_until(executor, condition: Callable[[], bool], timeout_s: float = 10.0, step: Callable[[], None] | None = None
               ) -> bool:
    """Spin ``executor`` until ``condition()`` is true or ``timeout_s`` passes; ``step`` runs every turn."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        if step is not None:
            step()
        executor.spin_once(timeout_sec=0.02)
    return condition()
