"""Two perception apps on two cameras (namespaces app1, app2), one platform node, one manager
(mirrors `python -m dynofa_ros.nodes.bringup --apps 2`).

    ros2 launch dynofa_ros multi_app.launch.py platform:=sim policy:=joint

Parameters come from config/multi_app.yaml; shared topics (reports, commands, platform state, targets)
are remapped to absolute names so both apps meet one manager.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dynofa_ros.nodes.system import NODES, config_dir, shared_remappings

APPS = ("app1", "app2")


def generate_launch_description():
    config = str(config_dir() / "multi_app.yaml")
    args = [
        DeclareLaunchArgument("library", default_value="", description="subnet library JSON ('' = shipped)"),
        DeclareLaunchArgument("platform", default_value="sim", description="sim (simulated Xavier NX) or real"),
        DeclareLaunchArgument("policy", default_value="joint",
                              description="joint, subnet-only, dvfs-only, governor:<name> or static"),
    ]
    nodes = []
    for entry in NODES:
        if entry.per_app:
            for i, app in enumerate(APPS, start=1):
                extra = {"app_id": app, "library": LaunchConfiguration("library")} \
                    if entry.name == "perception" else {"seed": i}
                nodes.append(Node(package="dynofa_ros", executable=entry.executable, name=entry.name,
                                  namespace=app, output="screen", parameters=[config, extra],
                                  remappings=shared_remappings()))
        else:
            extra = {"platform": {"platform": LaunchConfiguration("platform")},
                     "manager": {"policy": LaunchConfiguration("policy"),
                                 "library": LaunchConfiguration("library")}}[entry.name]
            nodes.append(Node(package="dynofa_ros", executable=entry.executable, name=entry.name, output="screen",
                              parameters=[config, extra]))
    return LaunchDescription(args + nodes)
