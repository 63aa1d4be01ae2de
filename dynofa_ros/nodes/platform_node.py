"""Platform node: the device layer (real Linux board or simulated Xavier NX) on ROS.

Publishes ``platform_state`` (PlatformState) and ``temperature/<zone>`` (sensor_msgs/Temperature) at
``rate_hz``; applies ``dvfs_command`` (DvfsCommand), rejecting malformed commands and what the board does not
offer (logged once per cause with the reason, counted on /diagnostics); restores the hardware on exit. Simulated
boards say so in the board name, the diagnostics and the log. With ``platform: sim`` the board runs in real time,
and the load of ``app_domain`` follows the duty cycle (latency × frame rate) that the perception apps report.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Temperature

from dynofa_ros.msg import DvfsCommand, PerformanceReport, PlatformState
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.convert import state_to_msg
from dynofa_ros.nodes.process import spin_node
from dynofa_ros.nodes.qos import reliable
from dynofa_ros.nodes.rejections import first_clause
from dynofa_ros.platform.base import Platform
from dynofa_ros.platform.sim import SimulatedBoard
from dynofa_ros.platform.sim.emulation import DutyCycleLoad
from dynofa_ros.platform.types import DvfsSetting

PLATFORMS = ("sim", "real")


def make_platform(kind: str, board_config: str = "", mode: str = "", sysfs_root: str = "/") -> tuple[Platform, str]:
    """(platform, board name) for ``sim`` (real-time simulated Xavier NX) or ``real`` (LinuxPlatform)."""
    if kind == "sim":
        from dynofa_ros.platform.sim import RealTimeClock

        board = SimulatedBoard.from_config(board_config or None, mode=mode or None, clock=RealTimeClock())
        return board, f"{board.config.name} mode {board.mode.name}"
    if kind == "real":
        from dynofa_ros.platform.linux import LinuxPlatform

        return LinuxPlatform(sysfs_root), "linux"
    raise ValueError(f"platform must be one of {PLATFORMS}, got {kind!r}")


def zone_topic(zone: str) -> str:
    """A valid topic name for a thermal zone (``CPU-therm`` → ``temperature/cpu_therm``)."""
    return "temperature/" + (re.sub(r"[^a-z0-9_]", "_", zone.lower()).strip("_") or "zone")


class PlatformNode(P.ExplainsRefusals, Node):
    """Reads the board at ``rate_hz``, applies DVFS commands, restores the board on destroy."""

    def __init__(self, node_name: str = "platform", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        kind = P.declare(self, "platform", "sim", "board backend", read_only=True, choices=PLATFORMS)
        board_config = P.declare(self, "board_config", "", "simulated board YAML ('' = shipped Xavier NX)",
                                 read_only=True)
        mode = P.declare(self, "board_mode", "", "simulated nvpmodel mode ('' = the YAML's default)",
                         read_only=True)
        sysfs_root = P.declare(self, "sysfs_root", "/", "root of sysfs/procfs (real board)", read_only=True)
        rate = P.declare(self, "rate_hz", 10.0, "state publish rate [Hz]", read_only=True, float_range=(0.1, 200.0))
        self.app_domain = P.declare(self, "app_domain", "cpu0",
                                    "simulated board: domain whose load follows the apps' reports", read_only=True)
        error = P.check_choice("platform", kind, PLATFORMS)
        if error:
            raise ValueError(error)
        self.platform, self.board = make_platform(kind, board_config, mode, sysfs_root)
        self.domains = {d.name: d for d in self.platform.domains()}
        if self.platform.simulated and self.app_domain not in self.domains:
            raise ValueError(f"app_domain {self.app_domain!r} is not a domain of the board: {sorted(self.domains)}")
        self.load = DutyCycleLoad()
        self.commands_applied = 0
        self.last_state = None
        self.pub_state = self.create_publisher(PlatformState, "platform_state", reliable())
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable())
        self._pub_temp: dict[str, Any] = {}
        self.create_subscription(DvfsCommand, "dvfs_command", self._on_command, reliable())
        if isinstance(self.platform, SimulatedBoard):  # only a simulated board takes a background load
            self.create_subscription(PerformanceReport, "performance_report", self._on_report, reliable(50))
        self.create_timer(1.0 / rate, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        sim = "SIMULATED board (no real hardware is read or changed)" if self.platform.simulated else "real board"
        self.get_logger().info(f"{self.board}: {sim}; domains {sorted(self.domains)}")

    def _on_report(self, msg: PerformanceReport) -> None:  # simulated boards only (subscribed for them)
        load = self.load.update(msg.app_id, float(msg.latency_smoothed), float(msg.throughput))
        if load is not None:
            self.platform.set_load(self.app_domain, load)

    @staticmethod
    def check_command(msg: DvfsCommand) -> str | None:
        """Why ``msg`` is malformed (NaN/inf/negative numbers), or None; what the board offers is the
        platform's to check (``apply`` refuses with the reason)."""
        if not math.isfinite(msg.frequency) or msg.frequency < 0:
            return f"frequency must be a finite number of Hz >= 0 (0 = unchanged), got {msg.frequency}"
        if msg.online_cores < -1:
            return f"online_cores must be >= 0 (-1 = unchanged), got {msg.online_cores}"
        return None

    def _on_command(self, msg: DvfsCommand) -> None:
        reason = self.check_command(msg)
        if reason is not None:
            self.rejections.reject("DvfsCommand", first_clause(reason), f"for {msg.domain!r}: {reason}")
            return
        setting = DvfsSetting(msg.domain, int(msg.frequency) if msg.frequency > 0 else None,
                              None if msg.online_cores < 0 else int(msg.online_cores))
        refused = "; ".join(r for _, r in self.platform.apply([setting]).refused)
        if refused:  # the board's reasons carry the values: one cause per domain and what was asked of it
            asked = [n for n, v in (("frequency", setting.freq_hz), ("online cores", setting.online_cores))
                     if v is not None]
            cause = (f"{msg.domain}: {' and '.join(asked) or 'command'} refused by the board"
                     if msg.domain in self.domains else f"unknown domain {msg.domain!r}")
            self.rejections.reject("DvfsCommand", cause, f"for {msg.domain!r}: {refused}")
        else:
            self.commands_applied += 1

    @property
    def commands_rejected(self) -> int:
        return self.rejections.total("DvfsCommand")

    def _tick(self) -> None:
        state = self.platform.read()
        self.last_state = state
        stamp = self.get_clock().now().to_msg()
        domains = {d.name: d for d in self.platform.domains()}  # writability changes on monitoring-only boards
        self.pub_state.publish(state_to_msg(state, domains, self.board, stamp))
        for zone, temp in state.temperatures_c.items():
            pub = self._pub_temp.get(zone)
            if pub is None:
                pub = self._pub_temp[zone] = self.create_publisher(Temperature, zone_topic(zone), reliable())
            msg = Temperature(temperature=float(temp), variance=0.0)
            msg.header.stamp = stamp
            msg.header.frame_id = f"{zone} (simulated)" if state.simulated else zone
            pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        state = self.last_state
        values: dict[str, Any] = {"board": self.board, "simulated": self.platform.simulated,
                                  "commands_applied": self.commands_applied,
                                  "commands_rejected": self.commands_rejected, **self.rejections.diagnostic_values()}
        if state is not None:
            values.update({f"{n}_mhz": f"{d.cur_hz / 1e6:.1f}" for n, d in state.domains.items()})
            values.update({f"{r}_w": f"{w:.2f}" for r, w in state.power_w.items()})
        message = "SIMULATED board" if self.platform.simulated else "real board"
        self.pub_diag.publish(P.diagnostic(self, "dynofa platform", P.OK, message, values, hardware_id=self.board))

    def destroy_node(self) -> None:
        self.platform.close()  # restores what was changed (real boards); no-op on the simulation
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros platform_node``."""
    sys.exit(spin_node(PlatformNode, args))


if __name__ == "__main__":
    main()
