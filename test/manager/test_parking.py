"""Idle-domain parking of the joint controller on the simulated Xavier NX (no ROS)."""

from __future__ import annotations

import dataclasses

from dynofa_ros.manager.controller import ControllerConfig
from dynofa_ros.manager.harness import run_scenario
from dynofa_ros.manager.models import AppSpec, synthetic_levels
from dynofa_ros.manager.policy import make_policy
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.manager.scenarios import default_scenarios
from dynofa_ros.manager.simmodel import SimBoardModel
from dynofa_ros.platform.sim import SimulatedBoard


def _joint(board: SimulatedBoard, domain: str = "gpu", **config):
    app = AppSpec("cam", domain, synthetic_levels())
    policy = make_policy("joint", [app], board.domains(), SimBoardModel(board), config=ControllerConfig(**config))
    return policy, {"cam": AppTarget("cam", 0.040)}


def test_parks_idle_domains_once_and_never_the_app_domain() -> None:
    board = SimulatedBoard.from_config(None, mode="15W_6CORE")
    board.idle(0.2)
    infos = {d.name: d for d in board.domains()}
    policy, targets = _joint(board)
    first = policy.update(0.0, [], targets, board.read())
    parked = {s.domain: s for s in first.dvfs if s.domain != "gpu"}
    assert set(parked) == {"cpu0", "cpu2", "cpu4"}
    assert all(s.freq_hz == infos[d].frequencies_hz[0] for d, s in parked.items())
    assert parked["cpu0"].online_cores is None  # the cluster holding cpu0 keeps its cores
    assert parked["cpu2"].online_cores == 0 and parked["cpu4"].online_cores == 0
    assert all(first.reasons[d].startswith("no app on this domain") for d in parked)
    assert [s.domain for s in first.dvfs].count("gpu") == 1 and "gpu" not in first.reasons
    assert board.apply(first.dvfs).ok
    board.idle(0.2)
    again = policy.update(0.4, [], targets, board.read())
    assert [s.domain for s in again.dvfs] == ["gpu"]  # parked once, not every period
    board.set_load("cpu4", 0.5)
    assert board.apply([dataclasses.replace(parked["cpu4"], online_cores=2)]).ok  # someone brings cores back
    board.idle(0.2)
    loaded = policy.update(0.6, [], targets, board.read())
    back = [s for s in loaded.dvfs if s.domain == "cpu4"]
    assert back and back[0].freq_hz == infos["cpu4"].frequencies_hz[-1] and back[0].online_cores == 2
    assert "unparked" in loaded.reasons["cpu4"]


def test_parking_is_optional_and_saves_board_energy() -> None:
    steady = dataclasses.replace(default_scenarios()[0], duration_s=3.0)
    assert steady.name == "steady"
    levels = synthetic_levels()
    off = run_scenario(steady, "joint", levels, config=ControllerConfig(park_idle=False))
    on = run_scenario(steady, "joint", levels, config=ControllerConfig())
    assert on.energy_j < off.energy_j
    assert on.miss_rate <= off.miss_rate and on.mean_accuracy == off.mean_accuracy
    board = SimulatedBoard.from_config(None, mode="15W_6CORE")
    board.idle(0.2)
    policy, targets = _joint(board, park_idle=False)
    assert [s.domain for s in policy.update(0.0, [], targets, board.read()).dvfs] == ["gpu"]
