"""The simulated-board harness: deterministic, accounts energy and misses, goal checks can fail."""

from __future__ import annotations

import pytest

from dynofa_ros.manager.harness import best_governor, check_goal, fixed_levels_for, run_scenario
from dynofa_ros.manager.models import synthetic_levels
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.manager.scenarios import Scenario, ScenarioApp, default_scenarios


def _two_apps(duration: float = 3.0) -> Scenario:
    return Scenario("mini", "two apps", duration, (ScenarioApp("cam", "gpu"), ScenarioApp("nav", "cpu0", 5.0)),
                    (AppTarget("cam", 0.040, priority=1), AppTarget("nav", 0.200)))


def test_runs_are_deterministic_and_account_energy() -> None:
    levels = synthetic_levels()
    sc = _two_apps()
    a = run_scenario(sc, "joint", levels, seed=3)
    b = run_scenario(sc, "joint", levels, seed=3)
    assert a.energy_j == b.energy_j and a.miss_rate == b.miss_rate
    assert set(a.apps) == {"cam", "nav"} and a.apps["cam"].frames > 80 and a.apps["nav"].frames >= 14
    assert 0 < sum(m.energy_j for m in a.apps.values()) < a.energy_j  # apps' dynamic share of the board total
    perf = run_scenario(sc, "governor:performance", levels, fixed_levels=fixed_levels_for(sc, levels))
    assert a.energy_j < perf.energy_j


def test_goal_check_and_best_governor() -> None:
    levels = synthetic_levels()
    sc = _two_apps(2.0)
    runs = [run_scenario(sc, p, levels) for p in ("joint", "governor:performance", "governor:powersave")]
    gov = best_governor(runs)
    assert gov.policy == "governor:performance"  # powersave misses almost every frame
    check = check_goal(runs[0], gov, 0.25)
    assert check.saving == pytest.approx(1 - runs[0].energy_j / gov.energy_j)
    assert not check_goal(runs[0], gov, 0.99).passed
    with pytest.raises(ValueError, match="no governor"):
        best_governor(runs[:1])


def test_scenarios_are_well_formed() -> None:
    names = [s.name for s in default_scenarios()]
    assert names == ["steady", "target-change", "contention", "two-apps", "hot-ambient"]
    tc = next(s for s in default_scenarios() if s.name == "target-change")
    assert [t.max_latency_s for t in tc.targets_seen("cam")] == [0.045, 0.033, 0.060]
