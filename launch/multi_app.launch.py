"""Several perception apps, each on its own camera (namespaces app1..appN, default 2), one platform node, one
manager (`make demo DEMO_ARGS="--apps 2"` runs the same system in one process).

    ros2 launch dynofa_ros multi_app.launch.py apps:=4 platform:=sim policy:=joint

Parameters come from config/multi_app.yaml; shared topics (reports, commands, platform state, targets) are
remapped to absolute names so all apps meet one manager. Nodes and typed arguments:
dynofa_ros.nodes.launch_description.
"""

from dynofa_ros.nodes.launch_description import system_launch_description


def generate_launch_description():
    return system_launch_description(multi_app=True)
