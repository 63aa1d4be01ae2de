"""Evaluator node: live accuracy (results matched to true labels by stamp), run time series, optional MCAP.

Subscribes to every topic the system uses; :meth:`EvaluatorNode.write_report` writes ``summary.json`` and the
plots of :mod:`dynofa_ros.report.run_report` at the end of a run. The apps' reports say when an app ran without a
manager (``unmanaged``); the report marks each absence and return. The manager's /diagnostics say while an app's
target is infeasible; the report counts the frames of those stretches apart from the ordinary misses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from dynofa_ros.manager.records import MANAGER_DIAGNOSTIC, parse_infeasible_values
from dynofa_ros.msg import (
    ClassificationResult,
    DvfsCommand,
    ManagerHeartbeat,
    PerformanceReport,
    PerformanceTarget,
    PlatformState,
    SubnetCommand,
)
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.qos import reliable, subscribe_volatile_and_latched
from dynofa_ros.nodes.recording import McapRecorder
from dynofa_ros.report.evaluator import Match, StampMatcher
from dynofa_ros.report.run_report import RunLog, write_report


def _key(header) -> tuple[int, int]:
    return (header.stamp.sec, header.stamp.nanosec)


class EvaluatorNode(P.ExplainsRefusals, Node):
    """Collects what the report needs; with ``mcap`` set also records every topic it sees."""

    def __init__(self, node_name: str = "evaluator", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        results = P.declare(self, "result_topics", ["classification"], "ClassificationResult topics", read_only=True)
        labels = P.declare(self, "label_topics", ["image/label"], "true-label topics", read_only=True)
        mcap = P.declare(self, "mcap", "", "record every topic to this MCAP file ('' = off)", read_only=True)
        self.t0 = time.monotonic()
        self.log = RunLog()
        self.matcher = StampMatcher()
        self.recorder = McapRecorder(mcap) if mcap else None
        for topic in results:
            self._sub(ClassificationResult, topic, self._on_result, reliable(50))
        for topic in labels:
            self._sub(ClassificationResult, topic, self._on_label, reliable(50))
        self._sub(PerformanceReport, "performance_report", self._on_report, reliable(100))
        self._sub(PlatformState, "platform_state", self._on_platform, reliable())
        subscribe_volatile_and_latched(self, PerformanceTarget, "performance_target",
                                       self._recorded("performance_target", self._on_target))
        self._sub(SubnetCommand, "subnet_command", lambda m: None, reliable())
        self._sub(DvfsCommand, "dvfs_command", lambda m: None, reliable())
        self._sub(ManagerHeartbeat, "manager_heartbeat", lambda m: None, reliable())
        self._sub(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable())

    def now(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.t0

    def _recorded(self, topic: str, callback):
        """``callback`` that first records the message (with ``mcap`` set)."""
        def wrapped(msg):
            if self.recorder is not None:
                self.recorder.write(self.resolve_topic_name(topic), msg, time.time_ns())
            callback(msg)

        return wrapped

    def _sub(self, cls, topic: str, callback, qos) -> None:
        self.create_subscription(cls, topic, self._recorded(topic, callback), qos)

    def _on_result(self, msg: ClassificationResult) -> None:
        if not msg.class_ids:
            return
        match = self.matcher.add_result(msg.app_id, _key(msg.header), int(msg.class_ids[0]), int(msg.level),
                                        t=self.now())
        if match is not None:
            self._add_match(match)

    def _on_label(self, msg: ClassificationResult) -> None:
        if msg.class_ids:
            for m in self.matcher.add_label(_key(msg.header), int(msg.class_ids[0])):
                self._add_match(m)

    def _add_match(self, m: Match) -> None:
        series = self.log.apps[m.app_id]
        series.correct_t.append(self.now() if m.t is None else m.t)  # plotted when the result arrived
        series.correct.append(m.correct)

    def _on_report(self, msg: PerformanceReport) -> None:
        s = self.log.apps[msg.app_id]
        s.t.append(self.now())
        s.latency_s.append(float(msg.latency))
        s.level.append(int(msg.level))
        s.expected_accuracy.append(float(msg.expected_accuracy))
        s.processed, s.dropped, s.lost = int(msg.frames_processed), int(msg.frames_dropped), int(msg.frames_lost)
        self.log.set_managed(msg.app_id, s.t[-1], not msg.unmanaged)

    def _on_platform(self, msg: PlatformState) -> None:
        self.log.simulated = bool(msg.simulated)
        self.log.board = msg.board
        self.log.add_platform(self.now(), {d.name: d.current_frequency for d in msg.domains},
                              dict(zip(msg.rail_names, msg.rail_power)),
                              dict(zip(msg.zone_names, msg.zone_temperature)), float(msg.energy))

    def _on_target(self, msg: PerformanceTarget) -> None:
        self.log.targets[msg.app_id].append((self.now(), float(msg.max_latency)))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == MANAGER_DIAGNOSTIC:
                infeasible = parse_infeasible_values({kv.key: kv.value for kv in status.values})
                for app_id in set(infeasible) | set(self.log.infeasible):
                    self.log.set_infeasible(app_id, self.now(), infeasible.get(app_id))

    def event(self, what: str) -> None:
        """Mark an event (target change, load start...) on every plot."""
        self.log.events.append((self.now(), what))

    def write_report(self, run_dir: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close the MCAP file (if any) and write the report into ``run_dir``."""
        if self.recorder is not None:
            self.recorder.close()
            extra = {**(extra or {}), "mcap": self.recorder.path.name}
        return write_report(run_dir, self.log, self.now(), extra)

    def destroy_node(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        super().destroy_node()
