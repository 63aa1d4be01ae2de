"""Each baseline follows its rule; the policy factory builds them by name."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dynofa_ros.manager.baselines import GovernorPolicy, StaticPolicy, SubnetOnlyPolicy
from dynofa_ros.manager.controller import ControllerConfig
from dynofa_ros.manager.models import AppSpec
from dynofa_ros.manager.policy import POLICY_NAMES, make_policy
from dynofa_ros.manager.records import AppReport, AppTarget

MHZ = 1_000_000


def _reports(n: int, level: int, latency: float, t0: float = 0.0) -> list[AppReport]:
    return [AppReport("cam", t0 + i / 30, level, latency) for i in range(n)]


def test_static_holds_level_and_top_frequency(gpu_domain, make_app, make_state) -> None:
    pol = StaticPolicy([make_app()], [gpu_domain], {"cam": 1})
    for k in range(3):
        d = pol.update(k, _reports(6, 1, 0.5), {"cam": AppTarget("cam", 0.01)}, make_state())
        assert d.levels["cam"].level == 1 and d.dvfs[0].freq_hz == 400 * MHZ
    with pytest.raises(ValueError, match="outside"):
        StaticPolicy([make_app()], [gpu_domain], {"cam": 7})


def test_subnet_only_steps_one_level_on_the_20_frame_mean(gpu_domain, make_app, make_state) -> None:
    pol = SubnetOnlyPolicy([make_app()], [gpu_domain])
    target = {"cam": AppTarget("cam", 0.030)}
    d = pol.update(0, _reports(19, 2, 0.040), target, make_state())
    assert d.levels["cam"].level == 2  # window not full yet
    d = pol.update(1, _reports(1, 2, 0.040), target, make_state())
    assert d.levels["cam"].level == 1 and "step down" in d.levels["cam"].reason
    assert d.dvfs[0].freq_hz == 400 * MHZ
    d = pol.update(2, _reports(10, 1, 0.040), target, make_state())
    assert d.levels["cam"].level == 1  # the window restarted after the step
    d = pol.update(3, _reports(10, 1, 0.010), target, make_state())  # mean 25 ms: inside the 20 % band
    assert d.levels["cam"].level == 1
    d = pol.update(4, _reports(20, 1, 0.010), target, make_state())
    assert d.levels["cam"].level == 2 and "step up" in d.levels["cam"].reason


def test_subnet_only_respects_the_accuracy_floor(gpu_domain, make_app, make_state) -> None:
    pol = SubnetOnlyPolicy([make_app()], [gpu_domain], levels={"cam": 1})
    d = pol.update(0, _reports(20, 1, 0.1), {"cam": AppTarget("cam", 0.03, 0.85)}, make_state())
    assert d.levels["cam"].level == 1 and "cam" in d.gives_way


@pytest.mark.parametrize(("gov", "util", "expect_mhz"), [
    ("performance", 0.1, 400), ("powersave", 0.9, 100), ("ondemand", 0.95, 400), ("ondemand", 0.05, 100)])
def test_governor_policy_follows_the_governor(gpu_domain, make_app, make_state, gov, util, expect_mhz) -> None:
    pol = GovernorPolicy([make_app()], [gpu_domain], gov, {"cam": 0})
    state = make_state(freq_hz=300 * MHZ)
    state.domains["gpu"].utilisation = util
    d = None
    for k in range(3):
        d = pol.update(k * 0.01, [], {"cam": AppTarget("cam", 0.03)}, state)
    assert d is not None and d.levels["cam"].level == 0
    assert d.dvfs[0].freq_hz == expect_mhz * MHZ


def test_dvfs_only_keeps_its_level_and_picks_lowest_frequency(board, gpu_domain, make_app, make_state) -> None:
    exact = ControllerConfig(confidence_z=0.0, keep_z=0.0, switch_cost_w=0.0, hysteresis=0.0, judge_frames=0)
    pol = make_policy("dvfs-only", [make_app()], [gpu_domain], board, fixed_levels={"cam": 2}, config=exact)
    d = pol.update(0, [], {"cam": AppTarget("cam", 0.030)}, make_state())
    assert d.levels["cam"].level == 2 and d.dvfs[0].freq_hz == 300 * MHZ  # 26.7 ms; 200 MHz gives 40 ms


def test_factory_builds_every_name_and_rejects_unknown(board, gpu_domain, make_app, make_state) -> None:
    for name in POLICY_NAMES:
        pol = make_policy(name, [make_app()], [gpu_domain], board)
        d = pol.update(0.0, [], {"cam": AppTarget("cam", 0.03)}, make_state())
        assert set(d.levels) == {"cam"} and d.dvfs
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("magic", [make_app()], [gpu_domain], board)
    with pytest.raises(ValueError, match="unknown governor"):
        make_policy("governor:turbo", [make_app()], [gpu_domain], board)
    unmeasured = AppSpec("cam", "gpu", tuple(replace(lv, latency_s={}) for lv in make_app().levels))
    with pytest.raises(ValueError, match="needs a board model"):
        make_policy("joint", [unmeasured], [gpu_domain])
