"""The table of nodes a dynofa_ros system runs, shared by launch/*.launch.py and the in-process bring-up.

Plain Python (no rclpy import), so a launch file can read it without starting ROS.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynofa_ros.package_files import package_file


def config_dir() -> Path:
    """``config/`` of the package's share directory (the checkout, or ``share/dynofa_ros`` when installed)."""
    return package_file("config")


MAX_APPS = 8  # multi-app systems: apps app1..appN, N <= MAX_APPS


def parameter_file(multi_app: bool) -> Path:
    """``config/dynofa.yaml`` (one app) or ``config/multi_app.yaml`` (apps in namespaces app1..appN)."""
    return config_dir() / ("multi_app.yaml" if multi_app else "dynofa.yaml")


def app_ids(apps: int) -> list[str]:
    """``app1``..``appN`` of a multi-app system; ValueError outside 1..MAX_APPS."""
    if not 1 <= apps <= MAX_APPS:
        raise ValueError(f"the number of apps must be in 1..{MAX_APPS}, got {apps}")
    return [f"app{i}" for i in range(1, apps + 1)]


# topics every app shares (absolute, so apps in namespaces meet one manager and one platform node)
SHARED_TOPICS = ("performance_report", "subnet_command", "platform_state", "performance_target", "dvfs_command",
                 "manager_heartbeat")


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


# The Fast DDS profile for camera frames (why: the file's comment). A user's own profile or builtin-transport choice
# wins; other RMW implementations ignore it. Fast DDS 2.x (Humble, Jazzy) reads FASTRTPS_DEFAULT_PROFILES_FILE,
# Fast DDS 3 (Kilted and later) FASTDDS_DEFAULT_PROFILES_FILE and warns about the old name.
DDS_PROFILE = "fastdds_large_frames.xml"
DDS_CHOICES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS")
FAST_DDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
FAST_DDS_2_DISTROS = ("humble", "jazzy")


def dds_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that give a process started with ``environ`` the shipped Fast DDS profile; none when its
    RMW is not Fast DDS or it already names a profile file or builtin transports."""
    if environ.get("RMW_IMPLEMENTATION", "") not in FAST_DDS_RMWS or any(environ.get(v) for v in DDS_CHOICES):
        return {}
    variable = DDS_CHOICES[1] if environ.get("ROS_DISTRO", "") in FAST_DDS_2_DISTROS else DDS_CHOICES[0]
    return {variable: str(config_dir() / DDS_PROFILE)}


def use_dds_profile(environ: MutableMapping[str, str]) -> dict[str, str]:
    """Put :func:`dds_environment` into ``environ`` (``os.environ`` before this process's first ROS context, which
    reads it once) and return what was set."""
    added = dds_environment(environ)
    environ.update(added)
    return added


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
