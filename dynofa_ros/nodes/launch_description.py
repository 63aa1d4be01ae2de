"""What ``launch/dynofa.launch.py`` (one app) and ``launch/multi_app.launch.py`` (``apps:=N``) start: the nodes of
:data:`dynofa_ros.nodes.system.NODES` with the parameter file of the system, and typed launch arguments.

Every argument sets node parameters with a declared type (``target_latency:=1``, ``:=0.02`` and ``:=0`` all give
a float), and its default is the parameter file's value, so the file stays the one place of the defaults.
``ros2 launch dynofa_ros dynofa.launch.py --show-args`` lists them. Imported by the launch files only (it needs
``launch`` and ``launch_ros``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from dynofa_ros.nodes.system import NODES, app_ids, dds_environment, load_parameters, parameter_file, shared_remappings


@dataclass(frozen=True)
class Argument:
    """A launch argument and the node parameters it sets."""

    name: str
    targets: tuple[tuple[str, str], ...]  # (node, parameter)
    value_type: type
    description: str


ARGUMENTS = (
    Argument("library", (("perception", "library"), ("manager", "library")), str,
             "subnet library of every app: a library JSON, or a shipped model: mbv3 (CNN), vit (Transformer) "
             "('' = mbv3)"),
    Argument("platform", (("platform", "platform"),), str, "sim (SIMULATED Jetson Xavier NX) or real (this board)"),
    Argument("policy", (("manager", "policy"),), str, "manager policy: joint, subnet-only, dvfs-only, "
             "governor:<name> or static"),
    Argument("target_latency", (("manager", "initial_max_latency"),), float,
             "latency target [s] of every app until a PerformanceTarget arrives (0 = none)"),
    Argument("source", (("camera", "source"),), str, "camera source: cifar10, folder, video or camera"),
    Argument("source_path", (("camera", "path"),), str, "cifar10: a dataset whose test split is played (any "
             "form dynofa reads; '' = the shipped CIFAR-10 test images); folder: an image folder; video: a video file"),
    Argument("camera_rate", (("camera", "rate_hz"),), float, "camera frame rate [Hz]"),
)


def system_launch_description(multi_app: bool) -> LaunchDescription:
    """The launch description of the one-app system, or of the multi-app one (``apps`` argument, default 2)."""
    config = parameter_file(multi_app)
    defaults = load_parameters(config)
    declared = [DeclareLaunchArgument(a.name, default_value=str(defaults[a.targets[0][0]][a.targets[0][1]]),
                                      description=a.description) for a in ARGUMENTS]
    overrides: dict[str, dict[str, ParameterValue]] = {e.name: {} for e in NODES}
    for a in ARGUMENTS:
        for node, parameter in a.targets:
            overrides[node][parameter] = ParameterValue(LaunchConfiguration(a.name), value_type=a.value_type)
    # the shipped Fast DDS profile for every process this launch starts, also those of a launch file that includes
    # this one (a camera driver's), unless the environment chose one
    declared += [SetEnvironmentVariable(k, v) for k, v in dds_environment(os.environ).items()]
    if multi_app:
        declared.append(DeclareLaunchArgument("apps", default_value="2", description="number of apps, each a "
                                              "camera and a perception node in namespace app<N>"))
        declared.append(DeclareLaunchArgument("libraries", default_value="", description="each app's library, "
                                              "comma-separated in app order (as library: mbv3,vit is a CNN app and "
                                              "a Transformer app); '' = library for every app"))
        return LaunchDescription([*declared, OpaqueFunction(function=_app_nodes, args=[str(config), overrides])])
    declared.append(DeclareLaunchArgument("input_topic", default_value="image",
                                          description="image topic between camera and perception"))
    remap = [("image", LaunchConfiguration("input_topic"))]
    nodes = [Node(package="dynofa_ros", executable=e.executable, name=e.name, output="screen",
                  parameters=[str(config), overrides[e.name]], remappings=remap if e.per_app else [])
             for e in NODES]
    return LaunchDescription([*declared, *nodes])


def _app_nodes(context: LaunchContext, config: str, overrides: dict[str, dict[str, ParameterValue]]) -> list[Node]:
    """The multi-app system's nodes for the ``apps`` argument: per-app nodes in namespaces app1..appN."""
    text = context.launch_configurations["apps"]
    if not text.isdigit():
        raise ValueError(f"apps must be a whole number, got {text!r}")
    apps = app_ids(int(text))
    libraries = [x.strip() for x in context.launch_configurations["libraries"].split(",")]
    if libraries == [""]:
        libraries = []
    elif len(libraries) != len(apps):
        raise ValueError(f"libraries names {len(libraries)} libraries for {len(apps)} apps: give one per app")
    nodes = []
    for e in NODES:
        if not e.per_app:
            extra = {"app_ids": apps, **({"libraries": libraries} if libraries else {})} if e.name == "manager" else {}
            nodes.append(Node(package="dynofa_ros", executable=e.executable, name=e.name, output="screen",
                              parameters=[config, {**overrides[e.name], **extra}]))
            continue
        for i, app in enumerate(apps, start=1):
            extra = ({"app_id": app, **({"library": libraries[i - 1]} if libraries else {})}
                     if e.name == "perception" else {"seed": i})
            nodes.append(Node(package="dynofa_ros", executable=e.executable, name=e.name, namespace=app,
                              output="screen", parameters=[config, {**overrides[e.name], **extra}],
                              remappings=shared_remappings()))
    return nodes
