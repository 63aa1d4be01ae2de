"""FrameStats: latency EMA and windowed throughput."""

from __future__ import annotations

import math

import pytest

from dynofa_ros.supernet.stats import FrameStats


def test_ema_and_throughput():
    stats = FrameStats(alpha=0.5, window=3)
    assert math.isnan(stats.latency_ema_s) and stats.throughput_hz == 0.0 and stats.last_t is None
    stats.update(0.010, 1.0)
    assert stats.latency_ema_s == pytest.approx(0.010) and stats.throughput_hz == 0.0
    stats.update(0.030, 1.1)
    assert stats.latency_ema_s == pytest.approx(0.020) and stats.throughput_hz == pytest.approx(10.0)
    stats.update(0.020, 1.2)
    stats.update(0.020, 1.6)  # window of 3: 1.1, 1.2, 1.6 -> 2 frames in 0.5 s
    assert stats.throughput_hz == pytest.approx(4.0)
    assert stats.processed == 4 and stats.last_latency_s == 0.020 and stats.last_t == 1.6


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="alpha"):
        FrameStats(alpha=0.0)
    with pytest.raises(ValueError, match="window"):
        FrameStats(window=1)
    with pytest.raises(ValueError, match="latency_s"):
        FrameStats().update(math.nan, 0.0)
