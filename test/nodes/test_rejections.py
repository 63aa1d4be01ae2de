"""Rejected inputs explained once per cause (plain Python), and one message taken once from two QoS routes."""

from __future__ import annotations

import pytest

from dynofa_ros.nodes.rejections import OTHER, Rejections, first_clause


def test_each_cause_is_logged_once_and_repeats_are_counted():
    logged: list[str] = []
    r = Rejections(logged.append)
    assert r.reject("PerformanceTarget", "max_latency must be > 0", "for 'app0': max_latency must be > 0, got 0")
    assert not r.reject("PerformanceTarget", "max_latency must be > 0", "for 'app0': max_latency must be > 0, got -1")
    assert r.reject("PerformanceTarget", "unknown app 'x'", "for 'x': unknown app 'x'")
    assert r.reject("DvfsCommand", "max_latency must be > 0", "same rule, other kind: its own cause")
    for _ in range(5):
        r.reject("PerformanceTarget", "unknown app 'x'", "for 'x': unknown app 'x'")
    assert len(logged) == 3 and "got 0" in logged[0]
    assert r.total("PerformanceTarget") == 8 and r.total("DvfsCommand") == 1 and r.total("SubnetCommand") == 0
    assert r.diagnostic_values() == {"rejected PerformanceTarget: max_latency must be > 0": 2,
                                     "rejected PerformanceTarget: unknown app 'x'": 6,
                                     "rejected DvfsCommand: max_latency must be > 0": 1}


def test_causes_are_bounded():
    logged: list[str] = []
    r = Rejections(logged.append, max_causes=3)
    for i in range(10):  # a stream of made-up app ids
        r.reject("SubnetCommand", f"unknown app 'a{i}'", f"unknown app 'a{i}'")
    assert len(r.counts) == 4 and r.counts[("SubnetCommand", OTHER)] == 7
    assert len(logged) == 4 and r.total("SubnetCommand") == 10


@pytest.mark.parametrize(("reason", "cause"), [
    ("PerformanceTarget.max_latency must be finite and >= 0, got nan", "PerformanceTarget.max_latency must be finite "
                                                                       "and >= 0"),
    ("unknown app 'nobody'; managed apps: ['app0']", "unknown app 'nobody'"),
    ("platform closed", "platform closed"),
])
def test_first_clause_drops_the_value(reason, cause):
    assert first_clause(reason) == cause


def test_first_arrival_passes_a_message_once_whichever_routes_deliver_it():
    pytest.importorskip("rclpy")
    from dynofa_ros.nodes.qos import FirstArrival

    gate = FirstArrival(2, memory=4)
    volatile, latched = 0, 1
    # a latched publisher: both routes deliver, in either order
    assert [gate.first(volatile, "A"), gate.first(latched, "A")] == [True, False]
    assert [gate.first(latched, "B"), gate.first(volatile, "B")] == [True, False]
    # a volatile publisher repeating the same content: only one route, every repeat passes
    assert [gate.first(volatile, "C") for _ in range(3)] == [True, True, True]
    # interleaved A, B from a latched publisher: each once, B after A
    passed = [k for route, k in ((volatile, "D"), (volatile, "E"), (latched, "D"), (latched, "E"))
              if gate.first(route, k)]
    assert passed == ["D", "E"]
    for k in ("F", "G", "H", "I", "J"):  # only the last `memory` contents are remembered
        gate.first(volatile, k)
    assert gate.first(latched, "A")
