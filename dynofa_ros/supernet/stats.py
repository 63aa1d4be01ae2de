"""Running per-frame statistics of an inference app: smoothed latency and recent throughput."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass
class FrameStats:
    """Latency EMA (weight ``alpha`` on the newest frame) and frames/s over the last ``window`` frames."""

    alpha: float = 0.1
    window: int = 30
    processed: int = 0
    last_latency_s: float = math.nan
    latency_ema_s: float = math.nan
    _done: deque[float] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.window < 2:
            raise ValueError(f"window must be >= 2 frames, got {self.window}")
        self._done = deque(self._done, maxlen=self.window)

    def update(self, latency_s: float, t: float) -> None:
        """Count one frame that took ``latency_s`` and finished at time ``t`` (s, any monotonic clock)."""
        if not math.isfinite(latency_s) or latency_s < 0:
            raise ValueError(f"latency_s must be finite and >= 0, got {latency_s}")
        self.processed += 1
        self.last_latency_s = latency_s
        ema = self.latency_ema_s
        self.latency_ema_s = latency_s if math.isnan(ema) else (1 - self.alpha) * ema + self.alpha * latency_s
        self._done.append(t)

    @property
    def last_t(self) -> float | None:
        """When the newest frame finished (None before the first)."""
        return self._done[-1] if self._done else None

    @property
    def throughput_hz(self) -> float:
        """Frames per second over the last (up to) ``window`` frames; 0 before two frames."""
        done = self._done
        if len(done) < 2 or done[-1] <= done[0]:
            return 0.0
        return (len(done) - 1) / (done[-1] - done[0])
