"""Helpers for interface round trips: fill every field of a message with distinct values."""

from __future__ import annotations

import math
import sys
import time

INTERFACES = (
    "ClassificationResult",
    "DomainState",
    "DvfsCommand",
    "ManagerHeartbeat",
    "PerformanceReport",
    "PerformanceTarget",
    "PlatformState",
    "SubnetCommand",
)


def msg_class(name: str):
    import dynofa_ros.msg as msgs

    return getattr(msgs, name)


def _value(type_name: str, seed: int):
    """A non-default value of a ROS field type (recursing into nested messages)."""
    if type_name.startswith("sequence<"):
        inner = type_name[len("sequence<"):-1]
        return [_value(inner, seed + i) for i in range(2)]
    scalars = {
        "boolean": True,
        "string": f"s{seed}",
        "float": 0.5 + seed,
        "double": 1.25 + seed,
    }
    if type_name in scalars:
        return scalars[type_name]
    if "/" in type_name:
        package, _, name = type_name.partition("/")
        module = __import__(f"{package}.msg", fromlist=[name])
        return filled(getattr(module, name), seed)
    if "int" in type_name:
        return 3 + seed
    raise ValueError(f"no test value for field type {type_name!r}")


def filled(cls, seed: int = 0):
    """An instance of ``cls`` with every field set to a value that differs from its default."""
    msg = cls()
    for i, (field, type_name) in enumerate(cls.get_fields_and_field_types().items()):
        setattr(msg, field, _value(type_name, seed + i))
    return msg


def same(a, b) -> bool:
    """Field-wise equality that treats sequences/arrays and float rounding sensibly."""
    if hasattr(a, "get_fields_and_field_types"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.get_fields_and_field_types())
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    if hasattr(a, "__len__") and not isinstance(a, str):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def publish_all_forever(seconds: float) -> None:
    """Publish one filled message of every interface on rt/<Name> at 20 Hz (for a second process)."""
    import rclpy

    rclpy.init()
    node = rclpy.create_node("interface_publisher")
    pubs = [(node.create_publisher(msg_class(n), f"rt/{n}", 10), filled(msg_class(n))) for n in INTERFACES]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for pub, msg in pubs:
            pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    publish_all_forever(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0)
