"""The shared ``ros2 run`` entry point: start-up errors give one line and exit code 1."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")

from dynofa_ros.nodes.params import spin_node  # noqa: E402


@pytest.mark.usefixtures("ros_env")  # spin_node initialises rclpy on the isolated domain
def test_constructor_errors_give_one_line_and_exit_code_1(capsys):
    def PerceptionNode():  # stands for a node class
        raise FileNotFoundError("subnet library file not found: /nowhere/library.json")

    assert spin_node(PerceptionNode, []) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["PerceptionNode: cannot start: subnet library file not found: /nowhere/library.json"]
    assert not rclpy.ok()  # shut down again


@pytest.mark.usefixtures("ros_env")
def test_other_errors_are_not_hidden():
    def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        spin_node(broken, [])
    assert not rclpy.ok()
