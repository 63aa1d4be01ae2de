"""Supervisor: policy construction and fallback, watchdog and safe setting, command de-duplication (no ROS)."""

from __future__ import annotations

import dataclasses

import pytest

from dynofa_ros.manager.models import synthetic_levels
from dynofa_ros.manager.records import (
    AppReport,
    AppTarget,
    Decision,
    Infeasible,
    infeasible_values,
    parse_infeasible_values,
)
from dynofa_ros.manager.supervisor import Supervisor, simulated_board_model
from dynofa_ros.platform.types import DomainInfo, DomainState, PlatformState

FREQS = (400_000_000, 800_000_000, 1_200_000_000)
LEVELS = synthetic_levels()
TOP = len(LEVELS) - 1


def _state(t: float, cur_hz: int = FREQS[0], simulated: bool = False) -> PlatformState:
    return PlatformState(t, simulated, {"cpu0": DomainState("cpu0", "cpu", cur_hz, FREQS[0], FREQS[-1], FREQS,
                                                            0.5, 2, "userspace")})


DOMAINS = [DomainInfo("cpu0", "cpu", FREQS, (0, 1), writable=True)]


def _report(t: float, level: int, app_id: str = "a") -> AppReport:
    return AppReport(app_id, t, level, 0.01)


def _static(**kw) -> Supervisor:
    return Supervisor("static", {"a": LEVELS}, "cpu0", 0.0, watchdog_s=1.0, **kw)


def test_static_policy_commands_once_and_dedups():
    sup = _static()
    events = sup.set_platform(_state(0.1), DOMAINS, 0.1)
    assert sup.active_policy == "static" and [e.severity for e in events] == ["info"]
    sup.add_report(_report(0.2, TOP), 0.2)
    step = sup.step(0.5)
    assert step.levels["a"].level == TOP
    assert [(s.domain, s.freq_hz) for s, _ in step.dvfs] == [("cpu0", FREQS[-1])]  # static pins the top
    sup.set_platform(_state(0.6, cur_hz=FREQS[-1]), DOMAINS, 0.6)  # the board got there
    sup.add_report(_report(0.7, TOP), 0.7)
    again = sup.step(0.8)
    assert again.levels == {} and again.dvfs == []  # nothing new to say
    sup.add_report(_report(0.9, 0), 0.9)  # the app runs another level (e.g. a lost command): say it again
    assert sup.step(1.0).levels["a"].level == TOP


def test_watchdog_holds_the_safe_setting_and_clears():
    sup = _static(safe_level=1)
    sup.set_platform(_state(0.1), DOMAINS, 0.1)
    sup.add_report(_report(0.2, TOP), 0.2)
    sup.step(0.3)
    sup.set_platform(_state(1.4), DOMAINS, 1.4)
    held = sup.step(1.5)  # no report for 1.3 s > watchdog_s
    assert "no performance reports from ['a']" in sup.watchdog_reason
    assert held.levels["a"].level == 1 and held.levels["a"].reason.startswith("watchdog")
    assert [(s.freq_hz, r.startswith("watchdog")) for s, r in held.dvfs] == [(FREQS[-1], True)]
    assert [e.severity for e in held.events] == ["warning"]
    assert sup.step(1.6).levels == {}  # held, not repeated
    sup.set_platform(_state(1.7), DOMAINS, 1.7)
    sup.add_report(_report(1.7, 1), 1.7)
    back = sup.step(1.8)
    assert sup.watchdog_reason == "" and any("cleared" in e.text for e in back.events)
    assert back.levels["a"].level == TOP  # the policy's level is sent again


def test_watchdog_without_platform_state():
    sup = _static()
    sup.add_report(_report(1.0, 0), 1.0)
    step = sup.step(1.5)
    assert sup.watchdog_reason.startswith("no platform state")
    assert step.levels["a"].level == 0 and step.dvfs == []  # no state: no domain to pin


def test_reports_are_consumed_without_a_policy_and_after_a_policy_error(recording_policy):
    sup = Supervisor("static", {"a": LEVELS}, "npu", 0.0, watchdog_s=100.0)
    for i in range(5):  # before any platform state: no policy yet
        sup.add_report(_report(0.1 * i, 0), 0.1 * i)
    sup.step(0.6)
    events = sup.set_platform(_state(0.7), DOMAINS, 0.7)  # the apps' domain "npu" is not on this board
    assert sup.policy is None and sup.policy_error and events[-1].severity == "error"
    for step in range(20):
        for i in range(5):
            sup.add_report(_report(1 + step + 0.1 * i, 0), 1 + step)
        sup.set_platform(_state(1 + step), DOMAINS, 1 + step)
        assert sup.step(1.5 + step).levels == {}
    sup.policy = recording_policy  # a policy now gets only the reports of its own period: none piled up
    sup.add_report(_report(30.0, 0), 30.0)
    sup.set_platform(_state(30.0), DOMAINS, 30.0)
    sup.step(30.5)
    assert recording_policy.seen == [1]


def test_joint_on_a_real_board_uses_measured_latency_else_falls_back():
    sup = Supervisor("joint", {"a": LEVELS}, "cpu0", 0.0, sim_model=simulated_board_model())
    sup.set_platform(_state(0.1, simulated=False), DOMAINS, 0.1)  # the sim model is not used on a real board
    assert sup.active_policy == "joint"
    unmeasured = tuple(dataclasses.replace(lv, latency_s={}) for lv in LEVELS)
    sup = Supervisor("joint", {"a": unmeasured}, "cpu0", 0.0, sim_model=simulated_board_model())
    events = sup.set_platform(_state(0.1, simulated=False), DOMAINS, 0.1)
    assert sup.active_policy == "static (fallback from joint)"
    assert events[0].severity == "error" and "falling back" in events[0].text


def test_joint_runs_on_the_simulated_board():
    from dynofa_ros.platform.sim import SimulatedBoard

    board = SimulatedBoard.from_config()
    sup = Supervisor("joint", {"a": LEVELS}, "cpu0", 0.0, sim_model=simulated_board_model(),
                     initial_targets={"a": AppTarget("a", 0.05)})
    sup.set_platform(board.read(), board.domains(), 0.1)
    assert sup.active_policy == "joint"
    sup.add_report(_report(0.2, TOP), 0.2)
    step = sup.step(0.3)
    assert sup.last_decision is not None and set(step.levels) == {"a"}


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="app_ids is empty"):
        Supervisor("static", {}, "cpu0", 0.0)
    with pytest.raises(ValueError, match="policy must be one of"):
        Supervisor("best", {"a": LEVELS}, "cpu0", 0.0)
    with pytest.raises(ValueError, match="safe_level 99"):
        Supervisor("static", {"a": LEVELS}, "cpu0", 0.0, safe_level=99)
    sup = _static()
    with pytest.raises(ValueError, match="unmanaged app 'b'"):
        sup.add_report(_report(0.0, 0, app_id="b"), 0.0)
    with pytest.raises(ValueError, match="unknown app 'b'"):
        sup.set_target(AppTarget("b", 0.02))
    with pytest.raises(FileNotFoundError, match="board config not found"):
        simulated_board_model("/nonexistent/board.yaml")
    with pytest.raises(ValueError, match="unknown mode"):
        simulated_board_model("", "99W")


def test_simulated_board_keeps_slack_after_a_level_switch():
    """Demo regression: the host's frames (overhead-dominated, not MAC-proportional) stretched by f_top/f.
    With the board's MAC-based latency model the slowdown jumped at the level switch and the absolute
    confidence margin doubled the bound, pushing cpu0 back towards the top although L1 had ample slack."""
    from dynofa_ros.manager.models import LevelPoint
    from dynofa_ros.platform.sim import SimulatedBoard

    table = [(0.7775, 6.79e6, 0.00660), (0.7845, 8.61e6, 0.00695), (0.7972, 15.96e6, 0.00832),
             (0.8039, 20.61e6, 0.00985), (0.8224, 49.55e6, 0.02192)]  # the shipped library, cpu-1t
    levels = tuple(LevelPoint(i, f"L{i}", a, m, {"cpu-1t": t}) for i, (a, m, t) in enumerate(table))
    board = SimulatedBoard.from_config(None, mode="15W_6CORE")
    doms = board.domains()
    top = max(next(d for d in doms if d.name == "cpu0").frequencies_hz)
    sup = Supervisor("joint", {"a": levels}, "cpu0", 0.0, sim_model=simulated_board_model("", "15W_6CORE"),
                     initial_targets={"a": AppTarget("a", 0.025, 0.80)})
    level, freq_at_change = len(levels) - 1, 0
    for k in range(1, 30 * 12):
        t = k / 30
        board.idle(1 / 30)
        state = board.read()
        latency = levels[level].latency_s["cpu-1t"] * top / state.domains["cpu0"].cur_hz
        sup.add_report(AppReport("a", t, level, latency, device="cpu0"), t)
        sup.set_platform(state, doms, t)
        if k % 15:
            continue
        if k == 30 * 5:
            sup.set_target(AppTarget("a", 0.015, 0.78))
        step = sup.step(t)
        level = step.levels["a"].level if "a" in step.levels else level
        assert board.apply([s for s, _ in step.dvfs]).ok
        if k == 30 * 5:
            freq_at_change = board.read().domains["cpu0"].cur_hz
    final = board.read().domains["cpu0"].cur_hz
    assert levels[level].top1 >= 0.78 and final <= freq_at_change < top
    assert levels[level].latency_s["cpu-1t"] * top / final < 0.015
    assert abs(sup.policy.filters["a"].mean - 1.0) < 0.05  # measured latency model: no jump at the switch


class _Scripted:
    """A policy whose decisions name the infeasible targets it is given, one list per period."""

    def __init__(self, script: list[dict[str, str]]) -> None:
        self.script = script

    def update(self, now_s, reports, targets, platform) -> Decision:
        causes = self.script.pop(0)
        return Decision(infeasible={a: Infeasible(c, f"{a}: figures at {now_s:g} s") for a, c in causes.items()})


def test_an_infeasible_target_is_said_once_per_cause_and_counted():
    sup = _static()
    sup.set_platform(_state(0.1), DOMAINS, 0.1)
    sup.policy = _Scripted([{}, {"a": "latency"}, {"a": "latency"}, {}, {"a": "latency"}, {"a": "thermal cap"}, {}])
    said, changed = [], []
    for k in range(7):
        t = 0.2 + 0.1 * k
        sup.add_report(_report(t, TOP), t)
        sup.set_platform(_state(t), DOMAINS, t)
        step = sup.step(t)
        said += [e.text for e in step.events if e.severity == "warning"]
        changed.append(step.infeasible_changed)
    assert len(said) == 2 and "(latency)" in said[0] and "(thermal cap)" in said[1]  # once per cause
    assert changed == [False, True, False, True, True, True, True]
    assert sup.infeasible_episodes == {("a", "latency"): 2, ("a", "thermal cap"): 1}
    assert sup.infeasible == {}
    values = infeasible_values({"a": Infeasible("latency", "a: 40 ms > 30 ms")})
    assert values == {"infeasible_a": "latency; a: 40 ms > 30 ms"}
    assert parse_infeasible_values({**values, "policy": "joint", "infeasible a: latency": "2"}) == {"a": "latency"}
