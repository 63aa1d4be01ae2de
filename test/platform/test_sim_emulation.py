"""Emulation helpers: DVFS slowdown of real frames, duty-cycle load (no ROS)."""

from __future__ import annotations

import math

import pytest

from dynofa_ros.platform.sim.emulation import DutyCycleLoad, dvfs_slowdown, stretch_frame
from dynofa_ros.platform.types import DomainState, PlatformState

MHZ = 1_000_000


def _state(cur_mhz: int, simulated: bool = True) -> PlatformState:
    table = (400 * MHZ, 800 * MHZ, 1600 * MHZ)
    return PlatformState(0.0, simulated, {"cpu0": DomainState("cpu0", "cpu", cur_mhz * MHZ, table[0], table[-1],
                                                              table)})


def test_slowdown_is_top_over_current_on_a_simulated_board_only():
    assert dvfs_slowdown(_state(400), "cpu0") == pytest.approx(4.0)
    assert dvfs_slowdown(_state(1600), "cpu0") == 1.0
    assert dvfs_slowdown(_state(400, simulated=False), "cpu0") == 1.0  # a real board slows itself
    assert dvfs_slowdown(_state(400), "gpu") == 1.0  # unknown domain
    assert dvfs_slowdown(_state(0), "cpu0") == 1.0  # no current frequency


def test_stretch_sleeps_the_missing_time():
    now = [10.0]
    slept: list[float] = []

    def sleep(dt: float) -> None:
        slept.append(dt)
        now[0] += dt

    now[0] = 10.02  # the frame took 20 ms
    assert stretch_frame(10.0, 2.5, clock=lambda: now[0], sleep=sleep) == pytest.approx(0.05)
    assert slept == [pytest.approx(0.03)]
    assert stretch_frame(10.0, 1.0, clock=lambda: now[0], sleep=sleep) == pytest.approx(0.05)
    assert len(slept) == 1  # no sleep at full speed
    with pytest.raises(ValueError, match="finite"):
        stretch_frame(10.0, math.inf, clock=lambda: now[0], sleep=sleep)


def test_duty_cycle_load_sums_apps_and_ignores_bad_reports():
    load = DutyCycleLoad()
    assert load.update("a", 0.010, 30.0) == pytest.approx(0.3)
    assert load.update("b", 0.020, 30.0) == pytest.approx(0.9)
    assert load.update("b", 0.050, 30.0) == 1.0  # capped
    assert load.update("a", math.nan, 30.0) is None and load.update("a", 0.01, math.inf) is None
    assert load.update("a", -1.0, 30.0) is None
    assert load.duty == {"a": pytest.approx(0.3), "b": 1.0}
