"""A scalar Kalman filter on an app's slowdown (measured latency / predicted latency), as in ALERT."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class SlowdownFilter:
    """Tracks one slowdown factor ξ with mean and variance, and the spread of single frames around it.

    Random-walk model ``ξ_k = ξ_{k-1} + w`` (variance ``process_var``), observations
    ``z = measured / predicted`` whose relative variance ``measurement_var`` (frame-to-frame noise) is learned
    from successive frames, ``(z_k - z_{k-1})² / 2`` (which a slowly moving mean does not bias): the given value
    is a prior worth ``prior_frames`` frames, then a running mean, then an exponential one
    (``spread_smoothing``). When the median of the last ``jump_frames`` observations is more than
    ``jump_sigmas`` standard deviations of a frame away (a competing load appeared or left), the estimate restarts
    from it, so it follows within a few frames instead of hundreds, while a single outlier frame does not move it.
    """

    mean: float = 1.0
    var: float = 0.05
    process_var: float = 1e-8
    measurement_var: float = 4e-3
    jump_sigmas: float = 3.0
    jump_frames: int = 3
    spread_smoothing: float = 0.0005
    prior_frames: int = 5
    frames: int = 0  # frames that taught the spread so far
    seen: int = 0  # frames folded in
    recent: list[float] = field(default_factory=list)  # the last observations, newest last

    def __post_init__(self) -> None:
        for name in ("mean", "var", "process_var", "measurement_var", "jump_sigmas", "spread_smoothing"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name == "mean" and v == 0):
                raise ValueError(f"SlowdownFilter.{name} must be finite and positive, got {v}")
        if self.prior_frames < 1 or self.jump_frames < 1:
            raise ValueError(f"SlowdownFilter.prior_frames and jump_frames must be >= 1, got {self.prior_frames}, "
                             f"{self.jump_frames}")

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    @property
    def frame_var(self) -> float:
        """Variance of the next frame's slowdown: the mean's uncertainty plus the frame-to-frame noise."""
        return self.var + self.measurement_var * self.mean * self.mean

    def update(self, measured_s: float, predicted_s: float) -> float:
        """Fold in one frame; returns the new mean. Non-positive or non-finite inputs are ignored."""
        if not (measured_s > 0 and predicted_s > 0 and math.isfinite(measured_s) and math.isfinite(predicted_s)):
            return self.mean
        self.seen += 1
        z = measured_s / predicted_s
        noise_var = self.measurement_var * self.mean * self.mean
        prior_var = self.var + self.process_var
        limit = self.jump_sigmas**2 * (prior_var + noise_var)
        if self.recent and (z - self.mean) ** 2 <= 4.0 * limit:  # a gross outlier or a step: not noise
            self._learn_spread((z - self.recent[-1]) ** 2 / (2.0 * self.mean * self.mean))
        self.recent = [*self.recent, z][-self.jump_frames:]
        shift = sorted(self.recent)[len(self.recent) // 2] - self.mean
        if len(self.recent) == self.jump_frames and shift * shift > limit:
            self.mean += shift  # a step change: restart from the recent frames, as unsure as one frame
            self.var = noise_var
            return self.mean
        gain = prior_var / (prior_var + noise_var)
        self.mean += gain * (z - self.mean)
        self.var = (1.0 - gain) * prior_var
        return self.mean

    def _learn_spread(self, sample: float) -> None:
        self.frames += 1
        rate = max(self.spread_smoothing, 1.0 / (self.prior_frames + self.frames))
        self.measurement_var += rate * (sample - self.measurement_var)

    def upper(self, z: float) -> float:
        """The next frame's slowdown at ``z`` standard deviations above the mean (the confidence bound)."""
        return self.mean + z * math.sqrt(self.frame_var)
