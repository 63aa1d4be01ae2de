"""Thermal guard: caps ahead of the trip point, recovery when cool, and trip points respected on the sim."""

from __future__ import annotations

import pytest

from dynofa_ros.manager.harness import run_scenario
from dynofa_ros.manager.models import synthetic_levels
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.manager.scenarios import Scenario, ScenarioApp
from dynofa_ros.manager.thermal import ThermalGuard


def test_guard_caps_before_trip_and_recovers() -> None:
    guard = ThermalGuard({"GPU-therm": 96.0}, margin_c=5.0, horizon_s=5.0)
    doms = {"gpu": ("gpu", 15), "cpu0": ("cpu", 25)}
    caps = guard.update(0.0, {"GPU-therm": 80.0}, doms)
    assert caps == {"gpu": 14, "cpu0": 24}
    for k in range(1, 6):  # +1.5 °C/s: predicted to cross 91 °C within the horizon at 85 °C
        caps = guard.update(k * 1.0, {"GPU-therm": 80.0 + 1.5 * k}, doms)
    assert caps["gpu"] < 14 and caps["cpu0"] == 24  # only the domain heating the zone is capped
    low = caps["gpu"]
    for k in range(6, 40):
        caps = guard.update(k * 1.0, {"GPU-therm": 70.0}, doms)
    assert caps["gpu"] == 14 and low < 14
    with pytest.raises(ValueError, match="finite"):
        ThermalGuard({"x": float("nan")})


def test_joint_stays_below_trip_where_performance_throttles() -> None:
    hot = Scenario("hot", "hot ambient", 20.0, (ScenarioApp("cam", "gpu"),), (AppTarget("cam", 0.040),),
                   ambient_c=75.0, preheat_s=120.0)
    levels = synthetic_levels()
    perf = run_scenario(hot, "governor:performance", levels, fixed_levels={"cam": 6})
    joint = run_scenario(hot, "joint", levels, fixed_levels={"cam": 6})
    assert perf.throttled_s > 0 and perf.peak_temp_c > 96.0
    assert joint.throttled_s == 0 and joint.peak_temp_c < 96.0
