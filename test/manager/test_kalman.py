"""The slowdown Kalman filter converges and follows step changes."""

from __future__ import annotations

import random

import pytest

from dynofa_ros.manager.kalman import SlowdownFilter


def test_converges_on_constant_slowdown_with_noise() -> None:
    rng = random.Random(1)
    f = SlowdownFilter()
    v0 = f.var
    for _ in range(200):
        f.update(0.020 * 1.6 * (1 + rng.gauss(0, 0.04)), 0.020)
    assert f.mean == pytest.approx(1.6, abs=0.03)
    assert f.var < v0 / 10


def test_follows_a_step_within_a_few_frames() -> None:
    f = SlowdownFilter()
    for _ in range(100):
        f.update(0.010, 0.010)
    assert f.mean == pytest.approx(1.0, abs=1e-3)
    for _ in range(3):
        f.update(0.020, 0.010)  # a competing load doubles the latency
    assert f.mean > 1.9
    assert f.upper(2.0) > f.mean


def test_ignores_bad_samples_and_rejects_bad_parameters() -> None:
    f = SlowdownFilter()
    f.update(float("nan"), 0.01)
    f.update(0.01, 0.0)
    assert f.mean == 1.0
    with pytest.raises(ValueError, match="measurement_var"):
        SlowdownFilter(measurement_var=float("inf"))
