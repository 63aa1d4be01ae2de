"""Platform and manager nodes over real DDS: DVFS commands, simulated state, targets from volatile and latched
publishers, rejections explained once per cause, refused parameter sets, heartbeat, watchdog."""

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
    ManagerHeartbeat,
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


def _status_values(diags: list[DiagnosticArray], name: str) -> dict[str, str]:
    """Key/values of the last status called ``name``."""
    status = next(s for d in reversed(diags) for s in d.status if s.name == name)
    return {kv.key: kv.value for kv in status.values}


def test_platform_node_publishes_simulated_state_and_applies_dvfs(ros_context, executor):
    node = PlatformNode(context=ros_context, parameter_overrides=[Parameter("rate_hz", value=20.0)])
    assert node.rejections.warn == node.get_logger().warning
    logged: list[str] = []
    node.rejections.warn = logged.append
    tester = rclpy.create_node("tester", context=ros_context)
    states: list[PlatformState] = []
    temps: list[Temperature] = []
    diags: list[DiagnosticArray] = []
    tester.create_subscription(PlatformState, "platform_state", states.append, reliable())
    tester.create_subscription(Temperature, zone_topic("CPU-therm"), temps.append, reliable())
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    cmd = tester.create_publisher(DvfsCommand, "dvfs_command", reliable())
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: states and temps and cmd.get_subscription_count() > 0)
    assert states[-1].simulated and "simulated" in states[-1].board
    assert "simulated" in temps[-1].header.frame_id and 0 < temps[-1].temperature < 120
    cpu0 = next(d for d in states[-1].domains if d.name == "cpu0")
    low = cpu0.available_frequencies[2]
    cmd.publish(DvfsCommand(domain="cpu0", frequency=123.0, online_cores=-1, reason="not a table step"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=124.0, online_cores=-1, reason="same cause"))
    cmd.publish(DvfsCommand(domain="npu", frequency=0.0, online_cores=-1, reason="no such domain"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=math.inf, online_cores=-1, reason="malformed"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=math.nan, online_cores=-1, reason="malformed, same cause"))
    cmd.publish(DvfsCommand(domain="cpu0", frequency=low, online_cores=-1, reason="test"))
    assert spin_until(executor, lambda: node.commands_rejected == 5 and node.commands_applied == 1)
    assert len(logged) == 3  # one line per cause: not in the table, unknown domain, not a number
    assert any("not in cpu0's table" in line for line in logged)
    expected = {"rejected DvfsCommand: cpu0: frequency refused by the board": "2",
                "rejected DvfsCommand: unknown domain 'npu'": "1",
                "rejected DvfsCommand: frequency must be a finite number of Hz >= 0 (0 = unchanged)": "2"}
    assert spin_until(executor, lambda: diags and expected.items() <= _status_values(diags, "dynofa platform").items())
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


def test_manager_rejects_bad_targets_once_per_cause(ros_context, executor, tiny_library):
    node = _manager(ros_context, tiny_library)
    logged: list[str] = []
    node.rejections.warn = logged.append
    tester = rclpy.create_node("tester", context=ros_context)
    pub = tester.create_publisher(PerformanceTarget, "performance_target", latched())
    diags: list[DiagnosticArray] = []
    tester.create_subscription(DiagnosticArray, "/diagnostics", diags.append, reliable())
    executor.add_node(node)
    executor.add_node(tester)
    for bad in (math.nan, -0.01, math.inf):
        pub.publish(PerformanceTarget(app_id="app0", max_latency=bad))
    for app_id in ("nobody", "nobody", ""):
        pub.publish(PerformanceTarget(app_id=app_id, max_latency=0.02))
    pub.publish(PerformanceTarget(app_id="app0", max_latency=0.02, min_accuracy=0.5, priority=1.0))
    # every message of the latched publisher reaches both routes; each counts once
    assert spin_until(executor, lambda: "app0" in node.supervisor.targets and node.rejected_targets == 6)
    assert node.supervisor.targets["app0"].max_latency_s == pytest.approx(0.02)
    assert len(logged) == 3  # not a number, unknown app 'nobody', empty app id
    causes = {cause: n for (kind, cause), n in node.rejections.counts.items() if kind == "PerformanceTarget"}
    assert causes == {"PerformanceTarget.max_latency must be finite and >= 0": 3, "unknown app 'nobody'": 2,
                      "app_id must be a non-empty string": 1}
    assert spin_until(executor, lambda: diags and _status_values(diags, "dynofa manager").get(
        "rejected PerformanceTarget: unknown app 'nobody'") == "2")


def test_a_volatile_target_takes_effect(ros_context, executor, tiny_library):
    """What ``ros2 topic pub --once /performance_target ...`` sends with its default (volatile) QoS."""
    node = _manager(ros_context, tiny_library)
    tester = rclpy.create_node("tester", context=ros_context)
    pub = tester.create_publisher(PerformanceTarget, "performance_target", reliable())
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
    pub.publish(PerformanceTarget(app_id="app0", max_latency=0.02))
    assert spin_until(executor, lambda: "app0" in node.supervisor.targets)
    assert node.supervisor.targets["app0"].max_latency_s == pytest.approx(0.02)


def test_a_latched_target_published_before_the_manager_started_takes_effect_once(ros_context, executor,
                                                                                 tiny_library):
    from rclpy.serialization import deserialize_message, serialize_message

    tester = rclpy.create_node("tester", context=ros_context)
    pub = tester.create_publisher(PerformanceTarget, "performance_target", latched())
    early = PerformanceTarget(app_id="app0", max_latency=0.03)
    pub.publish(early)
    node = _manager(ros_context, tiny_library)
    applied = []
    set_target = node.supervisor.set_target
    node.supervisor.set_target = lambda target: (applied.append(target.max_latency_s), set_target(target))
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: applied)
    assert applied == [pytest.approx(0.03)]
    assert spin_until(executor, lambda: pub.get_subscription_count() == 2)  # both routes matched
    later = PerformanceTarget(app_id="app0", max_latency=0.015)
    pub.publish(later)
    received = repr(deserialize_message(serialize_message(later), PerformanceTarget))  # float32 on the wire
    assert spin_until(executor, lambda: node.target_routes.deliveries(received) == (1, 1))  # on both routes
    assert applied == [pytest.approx(0.03), pytest.approx(0.015)]  # and taken once
    assert node.supervisor.targets["app0"].max_latency_s == pytest.approx(0.015)


def test_manager_publishes_a_heartbeat_every_period(ros_context, executor, tiny_library):
    node = _manager(ros_context, tiny_library, app_ids=["app1", "app2"])
    tester = rclpy.create_node("tester", context=ros_context)
    beats: list[ManagerHeartbeat] = []
    tester.create_subscription(ManagerHeartbeat, "manager_heartbeat", beats.append, reliable())
    executor.add_node(node)
    executor.add_node(tester)
    assert spin_until(executor, lambda: len(beats) >= 3)
    assert list(beats[-1].app_ids) == ["app1", "app2"] and beats[-1].period == pytest.approx(0.1)


def test_refused_parameter_sets_are_explained_once_per_parameter(ros_context, executor, tiny_library):
    from rcl_interfaces.srv import SetParameters
    from rclpy.exceptions import ParameterImmutableException, ParameterNotDeclaredException

    node = _manager(ros_context, tiny_library)
    logged: list[str] = []
    node.rejections.warn = logged.append
    tester = rclpy.create_node("tester", context=ros_context)
    executor.add_node(node)
    executor.add_node(tester)
    for _ in range(3):
        try:  # read-only: refused (older rclpy raises, newer returns an unsuccessful result)
            assert not node.set_parameters([Parameter("policy", value="joint")])[0].successful
        except ParameterImmutableException:
            pass
    assert not node.set_parameters_atomically([Parameter("period_s", value=5.0)]).successful
    with pytest.raises(ParameterNotDeclaredException):
        node.set_parameters([Parameter("no_such_parameter", value=1)])
    client = tester.create_client(SetParameters, "/manager/set_parameters")  # what `ros2 param set` calls
    assert spin_until(executor, client.service_is_ready)
    for value in (0.2, 0.3):
        future = client.call_async(SetParameters.Request(parameters=[Parameter("watchdog_s", value=value)
                                                                     .to_parameter_msg()]))
        assert spin_until(executor, future.done)
        assert not future.result().results[0].successful
    assert len(logged) == 4
    assert {cause: n for (kind, cause), n in node.rejections.counts.items() if kind == "parameter set"} == {
        "policy": 3, "period_s": 1, "no_such_parameter": 1, "watchdog_s": 2}


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


def test_manager_plans_each_app_with_its_own_library(ros_context, tiny_library, tiny_vit_library):
    manager = _manager(ros_context, tiny_library, app_ids=["cnn", "vit"],
                       libraries=[str(tiny_library), str(tiny_vit_library)])
    try:
        levels = {app.app_id: app.levels for app in manager.supervisor.apps}
        assert [len(levels["cnn"]), len(levels["vit"])] == [2, 3]
        assert [lv.top1 for lv in levels["vit"]] == pytest.approx([0.5, 0.6, 0.7])
    finally:
        manager.destroy_node()
    with pytest.raises(ValueError, match="one per app"):
        _manager(ros_context, tiny_library, app_ids=["a", "b"], libraries=[str(tiny_library)])


def test_manager_says_an_infeasible_target_once_and_puts_it_on_diagnostics(ros_context, tiny_library):
    node = _manager(ros_context, tiny_library, policy="joint", app_domain="gpu")
    published: list[DiagnosticArray] = []
    node.pub_diag.publish = published.append
    warned: list[str] = []
    node._log = lambda events: warned.extend(e.text for e in events if e.severity == "warning")
    try:
        node._on_platform(_sim_state_msg(node))
        node._on_target(PerformanceTarget(app_id="app0", max_latency=0.05, min_accuracy=0.9))  # above every level
        for _ in range(3):
            node._on_platform(_sim_state_msg(node))
            node._control()
        assert len(published) == 1  # published at once when the target became infeasible, not every period
        values = _status_values(published, "dynofa manager")
        assert values["infeasible_app0"].startswith("accuracy floor above every level; ")
        assert values["infeasible app0: accuracy floor above every level"] == "1"
        assert len(warned) == 1 and "infeasible (accuracy floor above every level)" in warned[0]
        node._on_target(PerformanceTarget(app_id="app0", max_latency=0.05, min_accuracy=0.5))
        node._control()
        assert len(published) == 2 and "infeasible_app0" not in _status_values(published, "dynofa manager")
    finally:
        node.destroy_node()
