"""The table of nodes a dynofa_ros system runs, shared by launch/*.launch.py and the in-process bring-up.

Plain Python (no rclpy import), so a launch file can read it without starting ROS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynofa_ros.package_files import package_file


def config_dir() -> Path:
    """``config/`` of the package's share directory (the checkout, or ``share/dynofa_ros`` when installed)."""
    return package_file("config")


# topics every app shares (absolute, so apps in namespaces meet one manager and one platform node)
SHARED_TOPICS = ("performance_report", "subnet_command", "platform_state", "performance_target", "dvfs_command")


@dataclass(frozen=True)
class NodeEntry:
    """One node: its ``ros2 run`` executable, its class for in-process bring-up, its parameter block."""

    name: str  # node name and key of its block in the config YAML
    executable: str  # scripts/<executable> (installed to lib/dynofa_ros/)
    module: str
    cls: str
    per_app: bool  # one instance per app (in namespace appN) in multi-app systems


NODES = (
    NodeEntry("camera", "camera_node", "dynofa_ros.nodes.camera_node", "CameraNode", per_app=True),
    NodeEntry("perception", "perception_node", "dynofa_ros.nodes.perception_node", "PerceptionNode", per_app=True),
    NodeEntry("platform", "platform_node", "dynofa_ros.nodes.platform_node", "PlatformNode", per_app=False),
    NodeEntry("manager", "manager_node", "dynofa_ros.nodes.manager_node", "ManagerNode", per_app=False),
)


def shared_remappings() -> list[tuple[str, str]]:
    """``topic → /topic`` for the shared topics (used for nodes inside an app namespace)."""
    return [(t, f"/{t}") for t in SHARED_TOPICS]


def load_parameters(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{node name: {parameter: value}}`` from a ROS parameter YAML (``node: ros__parameters: {...}``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of node names")
    out = {}
    for node, block in data.items():
        if not isinstance(block, dict) or not isinstance(block.get("ros__parameters"), dict):
            raise ValueError(f"{path}: node {node!r} needs a 'ros__parameters' mapping")
        out[node] = dict(block["ros__parameters"])
    return out
