"""A scalar Kalman filter on an app's slowdown (measured latency / predicted latency), as in ALERT."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class SlowdownFilter:
    """Tracks one slowdown factor ξ with mean and variance.

    Random-walk model ``ξ_k = ξ_{k-1} + w`` (variance ``process_var``), observations
    ``z = measured / predicted`` with variance ``measurement_var``. When an innovation is larger than
    ``jump_sigmas`` standard deviations (a competing load appeared or left), the variance is inflated
    so the estimate follows within a few frames instead of tens.
    """

    mean: float = 1.0
    var: float = 0.05
    process_var: float = 1e-4
    measurement_var: float = 4e-3
    jump_sigmas: float = 4.0

    def __post_init__(self) -> None:
        for name in ("mean", "var", "process_var", "measurement_var", "jump_sigmas"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name == "mean" and v == 0):
                raise ValueError(f"SlowdownFilter.{name} must be finite and positive, got {v}")

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def update(self, measured_s: float, predicted_s: float) -> float:
        """Fold in one frame; returns the new mean. Non-positive or non-finite inputs are ignored."""
        if not (measured_s > 0 and predicted_s > 0 and math.isfinite(measured_s) and math.isfinite(predicted_s)):
            return self.mean
        z = measured_s / predicted_s
        prior_var = self.var + self.process_var
        innovation = z - self.mean
        if innovation * innovation > self.jump_sigmas**2 * (prior_var + self.measurement_var):
            prior_var += innovation * innovation  # a step change: trust the new observations
        gain = prior_var / (prior_var + self.measurement_var)
        self.mean += gain * innovation
        self.var = (1.0 - gain) * prior_var
        return self.mean

    def upper(self, z: float) -> float:
        """The slowdown at ``z`` standard deviations above the mean (the confidence bound)."""
        return self.mean + z * math.sqrt(self.var + self.measurement_var)
