"""Resource-manager node: runs a manager policy over ROS.

In: ``performance_report`` (all apps), ``performance_target`` (transient local; NaN/inf/negative rejected with
a log line), ``platform_state``. Out: ``subnet_command``, ``dvfs_command``, ``/diagnostics``.
The policy (``joint``, ``subnet-only``, ``dvfs-only``, ``governor:<name>``, ``static``) comes from
:func:`dynofa_ros.manager.policy.make_policy`; it is built when the first platform state names the domains.
Watchdog: when an app's reports or the platform state are missing for ``watchdog_s``, the node holds the
safe setting (every app at ``safe_level``, app domains at their top frequency) and says so on /diagnostics.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from dynofa_ros.manager.models import AppSpec, levels_from_library
from dynofa_ros.manager.policy import POLICY_NAMES, make_policy
from dynofa_ros.manager.records import AppReport, AppTarget, Decision
from dynofa_ros.msg import DvfsCommand, PerformanceReport, PerformanceTarget, PlatformState, SubnetCommand
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.convert import msg_to_domains, msg_to_state, report_to_record, target_to_record
from dynofa_ros.nodes.qos import latched, reliable
from dynofa_ros.platform.types import DvfsSetting
from dynofa_ros.supernet.library import SubnetLibrary, default_library_path

FALLBACK_POLICY = "static"


class ManagerNode(Node):
    """Feeds reports/targets/platform state to a policy every ``period_s`` and publishes its commands."""

    def __init__(self, node_name: str = "manager", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.policy_name = P.declare(self, "policy", "joint", "manager policy", read_only=True,
                                     choices=POLICY_NAMES)
        app_ids = P.declare(self, "app_ids", ["app0"], "managed apps", read_only=True)
        library = P.declare(self, "library", "", "subnet library of the apps ('' = shipped default)",
                            read_only=True)
        self.app_domain = P.declare(self, "app_domain", "cpu0", "DVFS domain the apps run on", read_only=True)
        self.period_s = P.declare(self, "period_s", 0.5, "control period [s]", read_only=True,
                                  float_range=(0.01, 10.0))
        self.watchdog_s = P.declare(self, "watchdog_s", 3.0, "hold the safe setting after this long without "
                                    "reports or platform state [s]", read_only=True, float_range=(0.1, 600.0))
        self.safe_level = P.declare(self, "safe_level", 0, "level held by the watchdog (0 = fastest)",
                                    read_only=True, int_range=(0, 1000))
        self.board_config = P.declare(self, "board_config", "", "simulated board YAML for the joint model "
                                      "('' = shipped Xavier NX)", read_only=True)
        initial = P.declare(self, "initial_max_latency", 0.0, "latency target [s] of every app until a "
                            "PerformanceTarget arrives (0 = none)", read_only=True, float_range=(0.0, 60.0))
        error = P.check_choice("policy", self.policy_name, POLICY_NAMES)
        if error:
            raise ValueError(error)
        levels = levels_from_library(SubnetLibrary.load(library or default_library_path(), verify=False))
        self.levels = dict.fromkeys(app_ids, levels)
        if self.safe_level >= min(len(lv) for lv in self.levels.values()):
            raise ValueError(f"safe_level {self.safe_level} is not a level of every app")
        self.policy = None
        self.policy_error = ""
        self.active_policy = ""
        self.platform_msg: PlatformState | None = None
        self.targets: dict[str, AppTarget] = {a: AppTarget(a, initial) for a in app_ids} if initial > 0 else {}
        self._reports: list[AppReport] = []
        start = time.monotonic()
        self._last_report = dict.fromkeys(app_ids, start)
        self._last_level: dict[str, int] = {}
        self._last_platform = start
        self._commanded: dict[str, int] = {}
        self.watchdog_reason = ""
        self.last_decision: Decision | None = None
        self.rejected_targets = 0
        self.pub_subnet = self.create_publisher(SubnetCommand, "subnet_command", reliable())
        self.pub_dvfs = self.create_publisher(DvfsCommand, "dvfs_command", reliable())
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable())
        self.create_subscription(PerformanceReport, "performance_report", self._on_report, reliable(100))
        self.create_subscription(PerformanceTarget, "performance_target", self._on_target, latched())
        self.create_subscription(PlatformState, "platform_state", self._on_platform, reliable())
        self.create_timer(self.period_s, self._control)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"policy {self.policy_name} for apps {app_ids} on {self.app_domain}")

    # -- inputs ---------------------------------------------------------------------------------------
    def _on_report(self, msg: PerformanceReport) -> None:
        if msg.app_id not in self.levels:
            self.get_logger().warning(f"report from unmanaged app {msg.app_id!r} ignored", throttle_duration_sec=5.0)
            return
        try:
            self._reports.append(report_to_record(msg))
        except ValueError as exc:
            self.get_logger().warning(f"rejected PerformanceReport from {msg.app_id!r}: {exc}")
            return
        self._last_report[msg.app_id] = time.monotonic()
        self._last_level[msg.app_id] = int(msg.level)

    def _on_target(self, msg: PerformanceTarget) -> None:
        try:
            if msg.app_id not in self.levels:
                raise ValueError(f"unknown app {msg.app_id!r}; managed apps: {sorted(self.levels)}")
            target = target_to_record(msg)
        except ValueError as exc:
            self.rejected_targets += 1
            self.get_logger().warning(f"rejected PerformanceTarget: {exc}")
            return
        self.targets[target.app_id] = target
        self.get_logger().info(f"target {target.app_id}: max latency {target.max_latency_s * 1e3:.1f} ms, "
                               f"min accuracy {target.min_accuracy:.3f}, priority {target.priority}")

    def _on_platform(self, msg: PlatformState) -> None:
        self.platform_msg = msg
        self._last_platform = time.monotonic()
        if self.policy is None and not self.policy_error:
            try:
                self.policy = self._make_policy(msg)
            except ValueError as exc:
                self.policy_error = str(exc)
                self.get_logger().error(f"no policy can manage this board: {exc}")

    def _make_policy(self, msg: PlatformState):
        domains = msg_to_domains(msg)
        apps = [AppSpec(a, self.app_domain, lv) for a, lv in self.levels.items()]
        kwargs: dict[str, Any] = {}
        model = None
        if msg.simulated:
            from dynofa_ros.manager.simmodel import SimBoardModel
            from dynofa_ros.platform.sim import SimulatedBoard

            board = SimulatedBoard.from_config(self.board_config or None)
            model = SimBoardModel(board)
            zones = board.config.thermal.zones
            kwargs = {"trip_points_c": {z.name: z.trip_c for z in zones},
                      "zone_domains": {z.name: z.heated_by for z in zones}}
        accepted = inspect.signature(make_policy).parameters
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        try:
            policy = make_policy(self.policy_name, apps, domains, model, **kwargs)
            self.active_policy = self.policy_name
        except (NotImplementedError, ValueError) as exc:
            self.get_logger().error(f"policy {self.policy_name!r} unavailable here ({exc}); "
                                    f"falling back to {FALLBACK_POLICY!r}")
            policy = make_policy(FALLBACK_POLICY, apps, domains, model)
            self.active_policy = f"{FALLBACK_POLICY} (fallback from {self.policy_name})"
        sim = " on a SIMULATED board" if msg.simulated else ""
        self.get_logger().info(f"policy {self.active_policy} ready{sim}; domains {[d.name for d in domains]}")
        return policy

    # -- control --------------------------------------------------------------------------------------
    def check_watchdog(self, now: float) -> str:
        """Why the safe setting must be held now ('' when all inputs are fresh)."""
        if now - self._last_platform > self.watchdog_s:
            return f"no platform state for > {self.watchdog_s:g} s"
        stale = [a for a, t in self._last_report.items() if now - t > self.watchdog_s]
        if stale:
            return f"no performance reports from {stale} for > {self.watchdog_s:g} s"
        return ""

    def _control(self) -> None:
        reason = self.check_watchdog(time.monotonic())
        if reason:
            if reason != self.watchdog_reason:
                self.get_logger().warning(f"watchdog: {reason}; holding the safe setting")
                self._hold_safe(reason)
                self._commanded.clear()  # re-send the policy's levels once the inputs are back
            self.watchdog_reason = reason
            self._reports.clear()
            return
        if self.watchdog_reason:
            self.get_logger().info("watchdog cleared: inputs are fresh again")
            self.watchdog_reason = ""
        if self.policy is None or self.platform_msg is None:
            return
        reports, self._reports = self._reports, []
        state = msg_to_state(self.platform_msg)
        try:
            decision = self.policy.update(state.stamp_s, reports, dict(self.targets), state)
        except ValueError as exc:
            self.get_logger().error(f"policy update failed, holding the last setting: {exc}",
                                    throttle_duration_sec=5.0)
            return
        self.last_decision = decision
        for app_id, cmd in decision.levels.items():
            if self._commanded.get(app_id) != cmd.level or self._last_level.get(app_id, cmd.level) != cmd.level:
                self._send_level(app_id, cmd.level, cmd.reason)
        for setting in decision.dvfs:
            self._send_dvfs(setting, decision.reasons.get(setting.domain, self.active_policy), only_changes=True)

    def _send_level(self, app_id: str, level: int, reason: str) -> None:
        msg = SubnetCommand(app_id=app_id, level=int(level), reason=reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_subnet.publish(msg)
        self._commanded[app_id] = level

    def _send_dvfs(self, setting: DvfsSetting, reason: str, only_changes: bool) -> None:
        if only_changes and self.platform_msg is not None:
            now = next((d for d in self.platform_msg.domains if d.name == setting.domain), None)
            same_f = setting.freq_hz is None or (now is not None and int(now.current_frequency) == setting.freq_hz)
            same_c = setting.online_cores is None or (now is not None and now.online_cores == setting.online_cores)
            if same_f and same_c:
                return
        msg = DvfsCommand(domain=setting.domain, frequency=float(setting.freq_hz or 0),
                          online_cores=-1 if setting.online_cores is None else int(setting.online_cores),
                          reason=reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_dvfs.publish(msg)

    def _hold_safe(self, why: str) -> None:
        for app_id in self.levels:
            self._send_level(app_id, self.safe_level, f"watchdog: {why}")
        if self.platform_msg is not None:
            for d in self.platform_msg.domains:
                if d.name == self.app_domain and d.available_frequencies:
                    self._send_dvfs(DvfsSetting(d.name, int(max(d.available_frequencies))), f"watchdog: {why}",
                                    only_changes=False)

    def _publish_diagnostics(self) -> None:
        values: dict[str, Any] = {"policy": self.active_policy or f"{self.policy_name} (waiting for platform state)",
                                  "targets": len(self.targets), "rejected_targets": self.rejected_targets}
        if self.platform_msg is not None and self.platform_msg.simulated:
            values["board"] = self.platform_msg.board
        if self.last_decision is not None:
            values.update({f"reason_{a}": r for a, r in self.last_decision.reasons.items()})
            values.update({f"gives_way_{a}": r for a, r in self.last_decision.gives_way.items()})
        if self.policy_error:
            level, message = P.ERROR, f"no policy: {self.policy_error}"
        elif self.watchdog_reason:
            level, message = P.WARN, f"watchdog: {self.watchdog_reason}; holding safe setting"
        else:
            level, message = P.OK, "managing"
        self.pub_diag.publish(P.diagnostic(self, "dynofa manager", level, message, values))


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros manager_node``."""
    rclpy.init(args=args)
    node = ManagerNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
