"""One perception app: camera + perception + platform + manager (mirrors `python -m dynofa_ros.nodes.bringup`).

    ros2 launch dynofa_ros dynofa.launch.py platform:=sim policy:=joint target_latency:=0.025

Parameters come from config/dynofa.yaml (the bring-up reads the same file), the nodes from
dynofa_ros.nodes.system.NODES (the bring-up's table).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dynofa_ros.nodes.system import NODES, config_dir


def generate_launch_description():
    config = str(config_dir() / "dynofa.yaml")
    args = [
        DeclareLaunchArgument("input_topic", default_value="image", description="image topic (camera → perception)"),
        DeclareLaunchArgument("library", default_value="", description="subnet library JSON ('' = shipped)"),
        DeclareLaunchArgument("platform", default_value="sim", description="sim (simulated Xavier NX) or real"),
        DeclareLaunchArgument("policy", default_value="joint",
                              description="joint, subnet-only, dvfs-only, governor:<name> or static"),
        DeclareLaunchArgument("target_latency", default_value="0.0",
                              description="latency target [s] until a PerformanceTarget arrives (0 = none)"),
    ]
    overrides = {
        "camera": {},
        "perception": {"library": LaunchConfiguration("library")},
        "platform": {"platform": LaunchConfiguration("platform")},
        "manager": {"policy": LaunchConfiguration("policy"), "library": LaunchConfiguration("library"),
                    "initial_max_latency": LaunchConfiguration("target_latency")},
    }
    remap = [("image", LaunchConfiguration("input_topic"))]
    nodes = [
        Node(package="dynofa_ros", executable=entry.executable, name=entry.name, output="screen",
             parameters=[config, overrides[entry.name]],
             remappings=remap if entry.name in ("camera", "perception") else [])
        for entry in NODES
    ]
    return LaunchDescription(args + nodes)
