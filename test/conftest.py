"""Fixtures shared by every test folder: an isolated ROS 2 context (own domain, localhost discovery), a stand-in
manager policy and a tiny CIFAR-10 ImageFolder tree from the shipped test images."""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import pytest

from dynofa_ros.datasets.cifar10 import shipped_test_set
from dynofa_ros.manager.records import Decision

PER_CLASS = 30


def isolated_domain_id() -> int:
    """A DDS domain id owned by this test process (1..100), so parallel runs don't cross-talk."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 1 + zlib.crc32(f"{os.getpid()}{worker}".encode()) % 100


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for ROS processes of this session: own domain id, localhost-only discovery."""
    env = {
        "ROS_DOMAIN_ID": str(isolated_domain_id()),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # Jazzy and newer
        "ROS_LOCALHOST_ONLY": "1",  # Humble
    }
    os.environ.update(env)
    return env


@pytest.fixture
def ros_context(ros_env):
    """An initialised rclpy context on the isolated domain; shut down after the test."""
    rclpy = pytest.importorskip("rclpy")
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=int(ros_env["ROS_DOMAIN_ID"]))
    yield context
    if context.ok():
        rclpy.shutdown(context=context)


class RecordingPolicy:
    """Stands in for a manager policy: records how many reports each update gets and decides nothing."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def update(self, now: float, reports: list, targets: dict, state: object) -> Decision:
        self.seen.append(len(reports))
        return Decision()


@pytest.fixture
def recording_policy() -> RecordingPolicy:
    """A fresh :class:`RecordingPolicy`; assign it to ``Supervisor.policy``."""
    return RecordingPolicy()


@pytest.fixture(scope="session")
def cifar_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder tree ``<root>/<class>/NNNN.jpg``: the first 30 shipped CIFAR-10 test JPEGs of each class."""
    root = tmp_path_factory.mktemp("cifar_tiny")
    counts: dict[str, int] = {}
    with tarfile.open(shipped_test_set(), "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or parts[1] != "test":
                continue
            if counts.get(parts[2], 0) < PER_CLASS:
                counts[parts[2]] = counts.get(parts[2], 0) + 1
                (root / parts[2]).mkdir(exist_ok=True)
                (root / parts[2] / parts[3]).write_bytes(tar.extractfile(member).read())
            if len(counts) == 10 and min(counts.values()) == PER_CLASS:
                break
    return root
