"""One perception app: camera + perception + platform + manager (the system `make demo` runs in one process).

    ros2 launch dynofa_ros dynofa.launch.py platform:=sim policy:=joint target_latency:=0.025
    ros2 launch dynofa_ros dynofa.launch.py --show-args

Parameters come from config/dynofa.yaml; the nodes and the typed arguments from
dynofa_ros.nodes.launch_description.
"""

from dynofa_ros.nodes.launch_description import system_launch_description


def generate_launch_description():
    return system_launch_description(multi_app=False)
