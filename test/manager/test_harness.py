"""The simulated-board harness: deterministic, accounts energy and misses, goal checks can fail."""

from __future__ import annotations

import dataclasses

import pytest

from dynofa_ros.manager.harness import KnobChange, best_governor, check_goal, fixed_levels_for, run_scenario
from dynofa_ros.manager.models import synthetic_levels
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.manager.scenarios import LoadChange, Scenario, ScenarioApp, default_scenarios


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


def test_steady_state_changes_and_reversals_are_counted_from_the_changes() -> None:
    run = run_scenario(_two_apps(1.0), "static", synthetic_levels())
    run = dataclasses.replace(run, duration_s=30.0, event_times_s=(10.0,), changes=[
        KnobChange(0.0, "freq:gpu", 1100, 500),  # start: a transition
        KnobChange(5.0, "freq:gpu", 500, 400),   # steady: down
        KnobChange(6.0, "freq:gpu", 400, 500),   # steady: back up, a reversal
        KnobChange(11.0, "level:cam", 3, 2),     # within 2 s of the event: a transition
        KnobChange(20.0, "level:cam", 2, 1),     # steady: the same way as before
    ])
    assert [c.t_s for c in run.steady_changes()] == [5.0, 6.0, 20.0]
    assert run.steady_reversals() == 1
    assert run.steady_changes_per_min() == pytest.approx(3 / ((10 - 2) + (30 - 12)) * 60)
    assert (run.freq_changes, run.level_changes) == (3, 2)


def test_frames_of_a_target_said_infeasible_are_counted_apart() -> None:
    levels = synthetic_levels()
    sc = Scenario("hopeless", "a GPU load no setting outruns", 4.0, (ScenarioApp("cam", "gpu"),),
                  (AppTarget("cam", 0.040),), (LoadChange(2.0, "gpu", 0.6),))
    run = run_scenario(sc, "joint", levels, min_accuracy={"cam": levels[-1].top1})
    cam = run.apps["cam"]
    assert 0 < cam.infeasible_ticks < cam.frames + cam.dropped  # only under the load
    assert 0 < cam.infeasible_misses <= cam.infeasible_ticks
    assert run.ordinary_miss_rate < run.miss_rate
    assert run_scenario(sc, "static", levels).infeasible_ticks == 0  # baselines do not say
