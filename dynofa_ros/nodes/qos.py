"""QoS profiles by name (a node parameter picks one), following REP-2003."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

QOS_NAMES = ("sensor_data", "reliable", "best_effort")


def image_qos(name: str = "sensor_data", depth: int = 1) -> QoSProfile:
    """Profile for an image subscriber/publisher.

    ``sensor_data``: best effort, keep last ``depth`` (a best-effort subscriber accepts reliable and
    best-effort publishers); ``reliable``: reliable, keep last ``depth``; ``best_effort`` is an alias of
    ``sensor_data`` for publishers.
    """
    if name not in QOS_NAMES:
        raise ValueError(f"unknown QoS {name!r}; choose one of {QOS_NAMES}")
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    reliability = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def reliable(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``: results, reports, commands."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched(depth: int = 10) -> QoSProfile:
    """Reliable, transient local: late joiners get the last ``depth`` messages (performance targets)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
