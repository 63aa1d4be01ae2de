"""Resource-manager node: runs a manager policy over ROS.

In: ``performance_report`` (all apps), ``performance_target`` (from volatile publishers such as ``ros2 topic pub``
and from latched ones, also when they published before the manager started), ``platform_state``. Out:
``subnet_command``, ``dvfs_command``, ``manager_heartbeat`` (every control period: the perception nodes run
unmanaged without it), ``/diagnostics``. A rejected report or target (NaN/inf/negative, unknown or empty app id) is
logged once per cause with the reason and counted on /diagnostics. A target no setting is predicted to meet is
logged once per app and cause; /diagnostics carries ``infeasible_<app>`` ("cause; detail") while it lasts (published
at once when that changes, for the run report) and the episodes per cause.
The policy (``joint``, ``subnet-only``, ``dvfs-only``, ``governor:<name>``, ``static``), the watchdog (safe
setting while inputs are stale) and command de-duplication live in :class:`dynofa_ros.manager.supervisor.Supervisor`;
this node only translates messages and says on /diagnostics what the supervisor holds. The joint model of a
simulated board is built at start-up from ``board_config``/``board_mode`` (the platform node's board).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from dynofa_ros.manager.models import levels_from_library
from dynofa_ros.manager.policy import POLICY_NAMES
from dynofa_ros.manager.records import MANAGER_DIAGNOSTIC, AppTarget, infeasible_values
from dynofa_ros.manager.supervisor import Event, Supervisor, simulated_board_model
from dynofa_ros.msg import (
    DvfsCommand,
    ManagerHeartbeat,
    PerformanceReport,
    PerformanceTarget,
    PlatformState,
    SubnetCommand,
)
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.convert import msg_to_domains, msg_to_state, report_to_record, target_to_record
from dynofa_ros.nodes.process import spin_node
from dynofa_ros.nodes.qos import reliable, subscribe_volatile_and_latched
from dynofa_ros.nodes.rejections import first_clause
from dynofa_ros.platform.types import DvfsSetting
from dynofa_ros.supernet.library import SubnetLibrary, library_path
from dynofa_ros.supernet.serving import AUTO, resolve_backend
from dynofa_ros.supernet.serving import CHOICES as BACKEND_CHOICES


class ManagerNode(P.ExplainsRefusals, Node):
    """Feeds reports/targets/platform state to a :class:`Supervisor` every ``period_s``; publishes its commands."""

    def __init__(self, node_name: str = "manager", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        policy = P.declare(self, "policy", "joint", "manager policy", read_only=True, choices=POLICY_NAMES)
        app_ids = P.declare(self, "app_ids", ["app0"], "managed apps", read_only=True)
        library = P.declare(self, "library", "", "subnet library of the apps: a library JSON, or a shipped model: "
                            "mbv3, vit ('' = mbv3)", read_only=True)
        libraries = P.declare(self, "libraries", [""], "per app of app_ids, its library (as library); [''] = "
                              "library for every app", read_only=True)
        app_domain = P.declare(self, "app_domain", "cpu0", "DVFS domain the apps run on", read_only=True)
        self.period_s = P.declare(self, "period_s", 0.5, "control period [s]", read_only=True,
                                  float_range=(0.01, 10.0))
        watchdog_s = P.declare(self, "watchdog_s", 3.0, "hold the safe setting after this long without "
                               "reports or platform state [s]", read_only=True, float_range=(0.1, 600.0))
        safe_level = P.declare(self, "safe_level", 0, "level held by the watchdog (0 = fastest)",
                               read_only=True, int_range=(0, 1000))
        board_config = P.declare(self, "board_config", "", "simulated board YAML of the joint model; give the "
                                 "platform node the same ('' = shipped Xavier NX)", read_only=True)
        board_mode = P.declare(self, "board_mode", "", "simulated nvpmodel mode of the joint model; give the "
                               "platform node the same ('' = the YAML's default)", read_only=True)
        initial = P.declare(self, "initial_max_latency", 0.0, "latency target [s] of every app until a "
                            "PerformanceTarget arrives (0 = none)", read_only=True, float_range=(0.0, 60.0))
        backend = P.declare(self, "latency_backend", AUTO, "plan with the library's latency records of this "
                            "backend (auto: the one the perception node's auto picks on a CPU); levels without "
                            "them use the eager records", read_only=True, choices=BACKEND_CHOICES)
        error = P.check_choice("policy", policy, POLICY_NAMES) or P.check_choice("latency_backend", backend,
                                                                                  BACKEND_CHOICES)
        if error:
            raise ValueError(error)
        if not app_ids or not all(isinstance(a, str) and a.strip() for a in app_ids):
            raise ValueError(f"app_ids must list at least one non-empty app id, got {list(app_ids)!r}")
        libraries = list(libraries) if list(libraries) != [""] else [library] * len(app_ids)
        if len(libraries) != len(app_ids):
            raise ValueError(f"libraries names {len(libraries)} libraries for {len(app_ids)} apps {list(app_ids)}: "
                             "give one per app, or [''] for library")
        latency_backend = resolve_backend(AUTO, "cpu") if backend == AUTO else backend
        levels = {path: levels_from_library(SubnetLibrary.load(library_path(path), verify=False), latency_backend)
                  for path in set(libraries)}
        app_levels = {app: levels[path] for app, path in zip(app_ids, libraries, strict=True)}
        self.supervisor = Supervisor(
            policy, app_levels, app_domain, time.monotonic(), watchdog_s=watchdog_s,
            safe_level=safe_level, initial_targets={a: AppTarget(a, initial) for a in app_ids} if initial > 0 else None,
            sim_model=simulated_board_model(board_config, board_mode))
        self.board = ""
        self.app_ids = list(app_ids)
        self.pub_subnet = self.create_publisher(SubnetCommand, "subnet_command", reliable())
        self.pub_dvfs = self.create_publisher(DvfsCommand, "dvfs_command", reliable())
        self.pub_heartbeat = self.create_publisher(ManagerHeartbeat, "manager_heartbeat", reliable())
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable())
        self.create_subscription(PerformanceReport, "performance_report", self._on_report, reliable(100))
        self.target_routes = subscribe_volatile_and_latched(self, PerformanceTarget, "performance_target",
                                                            self._on_target)
        self.create_subscription(PlatformState, "platform_state", self._on_platform, reliable())
        self.create_timer(self.period_s, self._control)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info(f"policy {policy} for apps {list(app_ids)} on {app_domain}")

    # -- inputs ---------------------------------------------------------------------------------------
    def _on_report(self, msg: PerformanceReport) -> None:
        try:
            self.supervisor.add_report(report_to_record(msg), time.monotonic())
        except ValueError as exc:
            self.rejections.reject("PerformanceReport", first_clause(str(exc)), f"from {msg.app_id!r}: {exc}")

    def _on_target(self, msg: PerformanceTarget) -> None:
        try:
            target = target_to_record(msg)
            self.supervisor.set_target(target)
        except ValueError as exc:
            self.rejections.reject("PerformanceTarget", first_clause(str(exc)), f"for {msg.app_id!r}: {exc}")
            return
        self.get_logger().info(f"target {target.app_id}: max latency {target.max_latency_s * 1e3:.1f} ms, "
                               f"min accuracy {target.min_accuracy:.3f}, priority {target.priority}")

    def _on_platform(self, msg: PlatformState) -> None:
        self.board = msg.board
        self._log(self.supervisor.set_platform(msg_to_state(msg), msg_to_domains(msg),
                                               time.monotonic()))

    def _log(self, events: list[Event]) -> None:
        logger = self.get_logger()
        for e in events:
            if e.repeats:
                logger.error(e.text, throttle_duration_sec=5.0)
            elif e.severity == "error":
                logger.error(e.text)
            elif e.severity == "warning":
                logger.warning(e.text)
            else:
                logger.info(e.text)

    # -- control --------------------------------------------------------------------------------------
    def _control(self) -> None:
        step = self.supervisor.step(time.monotonic())
        self._log(step.events)
        stamp = self.get_clock().now().to_msg()
        heartbeat = ManagerHeartbeat(app_ids=self.app_ids, policy=self.active_policy, period=float(self.period_s))
        heartbeat.header.stamp = stamp
        self.pub_heartbeat.publish(heartbeat)
        for app_id, cmd in step.levels.items():
            msg = SubnetCommand(app_id=app_id, level=int(cmd.level), reason=cmd.reason)
            msg.header.stamp = stamp
            self.pub_subnet.publish(msg)
        for setting, reason in step.dvfs:
            self.pub_dvfs.publish(self._dvfs_msg(setting, reason, stamp))
        if step.infeasible_changed:
            self._publish_diagnostics()

    @staticmethod
    def _dvfs_msg(setting: DvfsSetting, reason: str, stamp) -> DvfsCommand:
        msg = DvfsCommand(domain=setting.domain, frequency=float(setting.freq_hz or 0),
                          online_cores=-1 if setting.online_cores is None else int(setting.online_cores),
                          reason=reason)
        msg.header.stamp = stamp
        return msg

    @property
    def rejected_targets(self) -> int:
        return self.rejections.total("PerformanceTarget")

    @property
    def active_policy(self) -> str:
        return self.supervisor.active_policy

    @property
    def policy_name(self) -> str:
        return self.supervisor.policy_name

    def _publish_diagnostics(self) -> None:
        sup = self.supervisor
        values: dict[str, Any] = {"policy": sup.active_policy or f"{sup.policy_name} (waiting for platform state)",
                                  "targets": len(sup.targets), "rejected_targets": self.rejected_targets}
        values.update(self.rejections.diagnostic_values())
        if sup.platform is not None and sup.platform.simulated:
            values["board"] = self.board
        if sup.last_decision is not None:
            values.update({f"reason_{a}": r for a, r in sup.last_decision.reasons.items()})
            values.update({f"gives_way_{a}": r for a, r in sup.last_decision.gives_way.items()})
        values.update(infeasible_values(sup.infeasible))
        values.update({f"infeasible {a}: {cause}": n for (a, cause), n in sup.infeasible_episodes.items()})
        if sup.policy_error:
            level, message = P.ERROR, f"no policy: {sup.policy_error}"
        elif sup.watchdog_reason:
            level, message = P.WARN, f"watchdog: {sup.watchdog_reason}; holding safe setting"
        else:
            level, message = P.OK, "managing"
        self.pub_diag.publish(P.diagnostic(self, MANAGER_DIAGNOSTIC, level, message, values))


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros manager_node``."""
    sys.exit(spin_node(ManagerNode, args))


if __name__ == "__main__":
    main()
