"""The oracle: an exhaustive per-segment plan from the whole trace and the simulator's true models (no ROS)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dynofa_ros.manager.harness import check_oracle, run_scenario
from dynofa_ros.manager.models import expected_miss_rate, miss_probability, synthetic_levels
from dynofa_ros.manager.oracle import ORACLE, OraclePolicy, plan_oracle
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.manager.scenarios import LoadChange, Scenario, ScenarioApp, TargetChange, default_scenarios
from dynofa_ros.manager.simmodel import SimBoardModel
from dynofa_ros.platform.sim import SimulatedBoard

LEVELS = synthetic_levels()


def _board() -> SimulatedBoard:
    return SimulatedBoard.from_config(None, mode="15W_6CORE")


def _scenario(name: str) -> Scenario:
    return next(s for s in default_scenarios() if s.name == name)


def test_miss_probability_follows_the_boards_noise_law() -> None:
    sigma, latency, limit = 0.03, 0.031, 0.0333
    k = np.random.default_rng(0).lognormal(-sigma**2 / 2, sigma, 200_000)  # as SimulatedBoard.submit draws it
    assert miss_probability(latency, limit, sigma) == pytest.approx(float(np.mean(k * latency > limit)), abs=2e-3)
    assert miss_probability(0.02, 0.03, 0.0) == 0.0 and miss_probability(0.04, 0.03, 0.0) == 1.0
    # a frame over the camera period also drops the next tick: both count, over frames + drops
    assert expected_miss_rate(0.04, 0.03, 0.033, 0.0) == pytest.approx(1.0)
    assert expected_miss_rate(0.031, 0.040, 0.0333, sigma) < expected_miss_rate(0.032, 0.040, 0.0333, sigma)


def test_the_plan_is_the_cheapest_setting_within_the_miss_risk_per_segment() -> None:
    sc, board = _scenario("two-apps"), _board()
    plan = plan_oracle(sc, LEVELS, board, noise_sigma=0.03)
    infos = {d.name: d for d in board.domains()}
    cpu_cores = board.read().domains["cpu0"].online_cores
    # exhaustive: every level × frequency (× online cores on the CPU cluster), each app, one segment
    assert plan.settings_evaluated == len(LEVELS) * (len(infos["gpu"].frequencies_hz)
                                                     + len(infos["cpu0"].frequencies_hz) * cpu_cores)
    model = SimBoardModel(board)
    (seg,) = plan.segments
    for app in sc.apps:
        c, target = seg.choices[app.app_id], next(t for t in sc.targets if t.app_id == app.app_id)
        assert c.feasible and c.miss_rate <= plan.miss_risk
        for lv in LEVELS:  # nothing admissible is cheaper (checked independently of the planner's loop)
            for f in infos[app.domain].frequencies_hz:
                for n in range(1, cpu_cores + 1) if app.domain == "cpu0" else (1,):
                    lat = model.latency_s(lv, app.domain, f, n)
                    if expected_miss_rate(lat, target.max_latency_s, 1 / app.rate_hz, 0.03) <= plan.miss_risk:
                        assert model.power_w(app.domain, f, min(1.0, lat * app.rate_hz), n) >= c.power_w - 1e-12
    parked = {s.domain: s for s in plan.parked}
    assert set(parked) == {"cpu2", "cpu4"} and all(s.online_cores == 0 for s in parked.values())


def test_segments_follow_the_events_and_the_floor() -> None:
    sc = _scenario("target-change")
    free = plan_oracle(sc, LEVELS, _board(), noise_sigma=0.03)
    assert [(s.start_s, s.end_s) for s in free.segments] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    floor = LEVELS[-1].top1
    eq = plan_oracle(sc, LEVELS, _board(), min_accuracy={"cam": floor}, noise_sigma=0.03)
    assert all(c.level == len(LEVELS) - 1 for s in eq.segments for c in s.choices.values())
    assert all(e.choices["cam"].power_w > f.choices["cam"].power_w for e, f in zip(eq.segments, free.segments))
    tight = eq.segment_at(15.0).choices["cam"]
    assert tight.freq_hz >= eq.segment_at(5.0).choices["cam"].freq_hz  # 33 ms needs at least as much speed


def test_a_segment_no_setting_meets_is_marked_infeasible_with_the_fewest_misses() -> None:
    sc = dataclasses.replace(_scenario("contention"), events=(LoadChange(10.0, "gpu", 0.5),
                                                                LoadChange(20.0, "gpu", 0.0)))
    plan = plan_oracle(sc, LEVELS, _board(), noise_sigma=0.03)
    loaded = plan.segment_at(15.0).choices["cam"]
    assert not loaded.feasible and plan.segment_at(5.0).choices["cam"].feasible
    policy = OraclePolicy(plan, {"cam": "gpu"})
    assert "cam" in policy.update(15.0, [], {}, _board().read()).infeasible
    assert not policy.update(5.0, [], {}, _board().read()).infeasible
    board = _board()
    top = board.domains()[-1].frequencies_hz[-1]
    assert loaded.freq_hz == top and loaded.level == 0  # the fastest setting misses least


def test_the_oracle_refuses_what_its_search_cannot_plan_exactly() -> None:
    shared = Scenario("shared", "two apps on one GPU", 1.0, (ScenarioApp("a", "gpu"), ScenarioApp("b", "gpu")),
                      (AppTarget("a", 0.04), AppTarget("b", 0.04)))
    with pytest.raises(ValueError, match="distinct domains"):
        plan_oracle(shared, LEVELS, _board())


def test_without_noise_no_causal_controller_beats_the_oracle() -> None:
    sc = dataclasses.replace(_scenario("target-change"), duration_s=6.0,
                             events=(TargetChange(3.0, AppTarget("cam", 0.033)),))
    oracle = run_scenario(sc, ORACLE, LEVELS, noise_sigma=0.0)
    joint = run_scenario(sc, "joint", LEVELS, noise_sigma=0.0)
    assert oracle.miss_rate == 0.0 and joint.miss_rate == 0.0
    assert oracle.energy_j < joint.energy_j  # the joint controller learns the slowdown first, at full speed
    assert check_oracle(joint, oracle, max_ratio=1.1).passed and not check_oracle(joint, oracle, max_ratio=1.0).passed
    assert oracle.steady_changes() == []  # it moves at the event and only then
