"""Message ⇄ record conversion of platform states: core counts and writability survive the round trip."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("rclpy")
from builtin_interfaces.msg import Time  # noqa: E402

from dynofa_ros.nodes.convert import msg_to_domains, msg_to_state, state_to_msg  # noqa: E402
from dynofa_ros.platform.sim import SimulatedBoard  # noqa: E402


def test_domains_round_trip_with_offline_cores_and_monitoring_only():
    board = SimulatedBoard.from_config()
    infos = {d.name: d for d in board.domains()}
    infos["gpu"] = dataclasses.replace(infos["gpu"], writable=False)  # e.g. a monitoring-only domain
    state = board.read()
    state.domains["cpu0"].online_cores = 1  # a core taken offline
    msg = state_to_msg(state, infos, "xavier", Time(sec=5))
    domains = {d.name: d for d in msg_to_domains(msg)}
    assert len(domains["cpu0"].cores) == len(infos["cpu0"].cores) == 2  # the domain keeps its size
    assert domains["cpu0"].writable and not domains["gpu"].writable
    assert domains["cpu0"].frequencies_hz == infos["cpu0"].frequencies_hz
    back = msg_to_state(msg)
    assert back.simulated and back.domains["cpu0"].online_cores == 1 and back.stamp_s == 5.0
    assert "simulated" in msg.board
    assert back.power_source == state.power_source == "VDD_IN"
    assert back.board_power_w == pytest.approx(state.power_w["VDD_IN"], rel=1e-6) and back.energy_j == state.energy_j
