"""The slowdown Kalman filter converges and follows step changes."""

from __future__ import annotations

import math
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


def test_learns_the_frame_to_frame_spread_and_bounds_the_next_frame() -> None:
    rng = random.Random(2)
    f = SlowdownFilter()
    assert f.measurement_var == pytest.approx(4e-3)  # the prior: 6.3 % per frame
    frames = [1.3 * math.exp(rng.gauss(0.0, 0.05)) for _ in range(600)]
    for z in frames:
        f.update(0.010 * z, 0.010)
    assert math.sqrt(f.measurement_var) == pytest.approx(0.05, rel=0.15)
    assert f.mean == pytest.approx(1.3, rel=0.01) and f.seen == 600
    over = sum(z > f.upper(2.33) for z in frames[300:]) / 300  # about 1 % of frames above the bound
    assert over < 0.03


def test_one_outlier_frame_does_not_restart_the_estimate() -> None:
    f = SlowdownFilter()
    for _ in range(100):
        f.update(0.010, 0.010)
    f.update(0.015, 0.010)  # one frame 50 % slower
    f.update(0.010, 0.010)
    assert f.mean < 1.01
    f.update(0.015, 0.010)  # ... and now twice in a row, as under a new load: follows
    f.update(0.015, 0.010)
    assert f.mean == pytest.approx(1.5, abs=0.01)
