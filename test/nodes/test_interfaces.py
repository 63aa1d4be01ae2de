"""Round trip of every dynofa_ros interface over real DDS, in one process and across two."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from .interfaces_util import INTERFACES, filled, msg_class, same  # noqa: E402

HERE = Path(__file__).parent


def _collect(context, received: dict, names, deadline_s: float, publish=None) -> None:
    node = rclpy.create_node("interface_listener", context=context)
    for name in names:
        node.create_subscription(msg_class(name), f"rt/{name}", lambda m, n=name: received.setdefault(n, m), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and len(received) < len(names):
        if publish:
            publish()
        executor.spin_once(timeout_sec=0.05)
    executor.shutdown()
    node.destroy_node()


def test_every_interface_round_trips_in_one_process(ros_context):
    node = rclpy.create_node("interface_publisher", context=ros_context)
    pubs = [(node.create_publisher(msg_class(n), f"rt/{n}", 10), filled(msg_class(n))) for n in INTERFACES]
    received: dict = {}

    def publish():
        for pub, msg in pubs:
            pub.publish(msg)

    _collect(ros_context, received, INTERFACES, 15.0, publish)
    node.destroy_node()
    assert set(received) == set(INTERFACES)
    for name in INTERFACES:
        assert same(received[name], filled(msg_class(name))), name


def test_every_interface_round_trips_across_processes(ros_context, ros_env):
    env = {**os.environ, **ros_env, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "interfaces_util.py"), "30"], env=env)
    try:
        received: dict = {}
        _collect(ros_context, received, INTERFACES, 25.0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert set(received) == set(INTERFACES)
    for name in INTERFACES:
        assert same(received[name], filled(msg_class(name))), name


def test_filled_differs_from_default():
    """Guard for the helper itself: a round trip of defaults would prove nothing."""
    for name in INTERFACES:
        cls = msg_class(name)
        assert not same(filled(cls), cls()), name
