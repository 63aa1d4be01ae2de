"""pip metadata for the dev venv (editable install, console scripts).

On a ROS 2 distro colcon builds the package with CMake (package.xml: ament_cmake); this file is
only used by ``pip install -e .`` in the project venv. See docs/BUILD.md.
"""

from setuptools import find_packages, setup

setup(
    name="dynofa_ros",
    version="0.1.0",
    description="Dynamic-OFA dynamic DNNs and runtime resource management for ROS 2",
    packages=find_packages(include=["dynofa_ros", "dynofa_ros.*"]),
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "dynofa = dynofa_ros.offline.cli:main",
            "dynofa-perception = dynofa_ros.nodes.perception_node:main",
            "dynofa-camera = dynofa_ros.nodes.camera_node:main",
            "dynofa-platform = dynofa_ros.nodes.platform_node:main",
            "dynofa-manager = dynofa_ros.nodes.manager_node:main",
            "dynofa-bringup = dynofa_ros.nodes.bringup:main",
        ]
    },
)
