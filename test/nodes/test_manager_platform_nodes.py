"""Platform and manager nodes over real DDS: DVFS commands, simulated state, target validation, watchdog."""

from __future__ import annotations

import math

import pytest

rclpy = pytest.importorskip("rclpy")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Temperature  # noqa: E402

from dynofa_ros.msg import (  # noqa: E402
    DvfsCommand,
    PerformanceReport,
    PerformanceTarget,
    PlatformState,
    SubnetCommand,
)
from dynofa_ros.nodes.manager_node import ManagerNode  # noqa: E402
from dynofa_ros.nodes.platform_node import PlatformNode, zone_topic  # noqa: E402
from dynofa_ros.nodes.qos import latched, reliable  # noqa: E402

from .node_util import spin_until  # noqa: E402


@pytest.fixture
def executor(ros_context):
    ex = SingleThreadedExecutor(context=ros_context)
    yield ex
    ex.shutdown()
    for node in list(ex.get_nodes()):
        node.destroy_node()


def test_platform_node_publishes_simulated_state_and_applies_dvfs(ros_context, executor, capfd):
    node = PlatformNode(context=ros_context, parameter_overrides=[Parameter("rate_hz", value=20.0)])
    tester = rclpy.create_node("tester", context=ros_context)
    states: list[PlatformState] = []
    temps: list[Temperature] = []
    tester.create_subscription(PlatformState, "platform_state", states.append, reliable())
    tester.create_subscription(Temperature, zone_topic("CPU-therm"), temps.append, reliable())
    cmd = tester.create_publisher(DvfsCommand, "dvfs_command", reliable())
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: states and temps and cmd.get_subscription_count() > 0)
    assert states[-1].simulated and "simulated" in states[-1].board
    assert "simulated" in temps[-1].header.frame_id and 0 < temps[-1].temperature < 120
    cpu0 = next(d for d in states[-1].domains if d.name == "cpu0")
    low = cpu0.available_frequencies[2]
    cmd.publish(DvfsCommand(domain="cpu0", frequency=123.0, online_cores=-1, reason="not a table step"))
    cmd.publish(DvfsCommand(domain="npu", frequency=0.0, online_cores=-1, reason="no such domain"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=math.inf, online_cores=-1, reason="malformed"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=math.nan, online_cores=-1, reason="malformed"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=low, online_cores=-1, reason="test"))
    assert spin_until(executor, lambda: node.commands_rejected == 4 and node.commands_applied == 1)
    err = capfd.readouterr().err
    assert err.count("rejected DvfsCommand") == 1 and "not in cpu0's table" in err  # throttled: one line per 5 s
    n = len(states)
    assert spin_until(executor, lambda: len(states) > n + 1)
    assert next(d for d in states[-1].domains if d.name == "cpu0").current_frequency == low


def test_dvfs_command_sanity_checks():
    assert PlatformNode.check_command(DvfsCommand(domain="cpu0", frequency=math.inf, online_cores=-1))
    assert PlatformNode.check_command(DvfsCommand(domain="cpu0", frequency=-1.0, online_cores=-1))
    assert PlatformNode.check_command(DvfsCommand(domain="cpu0", frequency=1e9, online_cores=-2))
    assert PlatformNode.check_command(DvfsCommand(domain="cpu0", frequency=1e9, online_cores=2)) is None


def _manager(ros_context, tiny_library, **params):
    overrides = {"library": str(tiny_library), "period_s": 0.1, "policy": "static", **params}
    return ManagerNode(context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def test_manager_rejects_nan_negative_and_infinite_targets(ros_context, executor, tiny_library, capfd):
    node = _manager(ros_context, tiny_library)
    tester = rclpy.create_node("tester", context=ros_context)
    pub = tester.create_publisher(PerformanceTarget, "performance_target", latched())
    executor.add_node(node)
    executor.add_node(tester)
    for bad in (math.nan, -0.01, math.inf):
        pub.publish(PerformanceTarget(app_id="app0", max_latency=bad))
    pub.publish(PerformanceTarget(app_id="nobody", max_latency=0.02))
    pub.publish(PerformanceTarget(app_id="app0", max_latency=0.02, min_accuracy=0.5, priority=1.0))
    assert spin_until(executor, lambda: "app0" in node.supervisor.targets and node.rejected_targets == 4)
    assert node.supervisor.targets["app0"].max_latency_s == pytest.approx(0.02)
    err = capfd.readouterr().err
    assert err.count("rejected PerformanceTarget") == 4 and "max_latency must be finite" in err


def test_manager_watchdog_holds_the_safe_setting(ros_context, executor, tiny_library):
    node = _manager(ros_context, tiny_library, watchdog_s=0.3, policy="joint")
    tester = rclpy.create_node("tester", context=ros_context)
    commands: list[SubnetCommand] = []
    diags: list[DiagnosticArray] = []
    tester.create_subscription(SubnetCommand, "subnet_command", commands.append, reliable())
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: node.supervisor.watchdog_reason and commands and diags, 8.0)
    assert "no platform state" in node.supervisor.watchdog_reason
    assert commands[-1].level == 0 and commands[-1].reason.startswith("watchdog")
    status = diags[-1].status[0]
    assert status.level == status.WARN and "holding safe setting" in status.message


def _sim_state_msg(node) -> PlatformState:
    from dynofa_ros.nodes.convert import state_to_msg
    from dynofa_ros.platform.sim import SimulatedBoard

    board = SimulatedBoard.from_config()
    domains = {d.name: d for d in board.domains()}
    return state_to_msg(board.read(), domains, "xavier", node.get_clock().now().to_msg())


def test_manager_without_a_policy_does_not_accumulate_reports(ros_context, tiny_library, recording_policy):
    node = _manager(ros_context, tiny_library, app_domain="npu")  # no domain of the board: no policy at all
    try:
        node._on_platform(_sim_state_msg(node))
        assert node.supervisor.policy_error
        for period in range(11):
            if period == 10:  # a policy now gets only the last period's reports: none piled up
                node.supervisor.policy = recording_policy
            for i in range(20):
                report = PerformanceReport(app_id="app0", level=0, latency=0.01, expected_accuracy=0.5)
                report.header.stamp.sec = period * 20 + i
                node._on_report(report)
            node._on_platform(_sim_state_msg(node))
            node._control()
        assert recording_policy.seen == [20]
    finally:
        node.destroy_node()


def test_manager_start_up_errors_are_clear(ros_context, tiny_library):
    with pytest.raises(FileNotFoundError, match="board config not found"):
        _manager(ros_context, tiny_library, board_config="/nonexistent/board.yaml")
    with pytest.raises(ValueError, match="unknown mode"):
        _manager(ros_context, tiny_library, board_mode="99W")
    with pytest.raises(ValueError, match="app_ids"):
        _manager(ros_context, tiny_library, app_ids=[""])
    with pytest.raises(ValueError, match="app_ids"):
        _manager(ros_context, tiny_library, app_ids=[])
