"""Evaluator node: live accuracy by stamp, bounded memory when the source has no labels, apps without a manager."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")
from builtin_interfaces.msg import Time  # noqa: E402

from dynofa_ros.msg import ClassificationResult, PerformanceReport  # noqa: E402
from dynofa_ros.nodes.evaluator_node import EvaluatorNode  # noqa: E402


def _msg(sec: int, class_id: int, app_id: str = "app0") -> ClassificationResult:
    msg = ClassificationResult(app_id=app_id, class_ids=[class_id], scores=[1.0], level=0)
    msg.header.stamp = Time(sec=sec)
    return msg


def test_matches_results_to_labels_in_either_order(ros_context):
    node = EvaluatorNode(context=ros_context)
    try:
        node._on_result(_msg(1, 3))
        node._on_label(_msg(1, 3, "ground_truth"))
        node._on_label(_msg(2, 4, "ground_truth"))
        node._on_result(_msg(2, 5))
        series = node.log.apps["app0"]
        assert series.correct == [True, False] and len(series.correct_t) == 2
        assert node.matcher.pending == (0, 2)
    finally:
        node.destroy_node()


def test_memory_stays_bounded_with_an_unlabelled_source(ros_context):
    node = EvaluatorNode(context=ros_context)
    try:
        capacity = node.matcher.capacity
        for sec in range(capacity + 500):  # a video/camera source: every label is -1
            node._on_label(_msg(sec, -1, "ground_truth"))
            node._on_result(_msg(sec, 1))
        assert node.matcher.pending == (capacity, 0)
        assert node.log.apps["app0"].correct == []
    finally:
        node.destroy_node()


def test_reports_of_an_unmanaged_app_mark_the_managers_absence_and_return(ros_context):
    node = EvaluatorNode(context=ros_context)
    try:
        for unmanaged in (False, True, True, False):
            node._on_report(PerformanceReport(app_id="app0", level=0, latency=0.01, unmanaged=unmanaged))
        t = node.log.apps["app0"].t
        assert node.log.unmanaged["app0"] == [(t[1], t[3])]
        assert [when for when, _ in node.log.events] == [t[1], t[3]]
    finally:
        node.destroy_node()


def test_the_managers_diagnostics_open_and_close_infeasible_stretches(ros_context):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    def diag(**values: str) -> DiagnosticArray:
        pairs = [KeyValue(key=k, value=v) for k, v in values.items()]
        return DiagnosticArray(status=[DiagnosticStatus(name="dynofa manager", values=pairs)])

    node = EvaluatorNode(context=ros_context)
    try:
        node._on_diagnostics(diag(policy="joint"))
        node._on_diagnostics(diag(infeasible_app0="thermal frequency cap; app0: 41 ms > 40 ms"))
        node._on_diagnostics(diag(infeasible_app0="thermal frequency cap; app0: 42 ms > 40 ms"))
        node._on_diagnostics(diag(policy="joint"))
        ((start, end, cause),) = node.log.infeasible["app0"]
        assert start < end and cause == "thermal frequency cap"
    finally:
        node.destroy_node()
