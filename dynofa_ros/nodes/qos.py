"""QoS profiles by name (a node parameter picks one), following REP-2003; topics taken from volatile and latched
publishers alike."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

QOS_NAMES = ("sensor_data", "reliable", "best_effort")
MATCHED = "auto"  # an image subscription whose reliability follows the topic's publishers


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


def matching_image_qos(publishers: Iterable[Any]) -> str:
    """The image QoS name that gets the most out of ``publishers`` (the topic's ``TopicEndpointInfo``), picked as
    ros2cli picks it: ``reliable`` when every publisher is reliable (lost fragments of large frames are then
    repaired), else ``sensor_data`` (best effort takes both kinds), also while no publisher is known."""
    kinds = {p.qos_profile.reliability for p in publishers}
    return "reliable" if kinds == {ReliabilityPolicy.RELIABLE} else "sensor_data"


def reliable(depth: int = 10) -> QoSProfile:
    """Reliable, volatile, keep last ``depth``: results, reports, commands."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched(depth: int = 10) -> QoSProfile:
    """Reliable, transient local: late joiners get the last ``depth`` messages (performance targets)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class FirstArrival:
    """Passes each message once when one topic is subscribed on several routes that can all deliver it.

    A message counts as new on a route when that route has now delivered it (same content) more often than any
    other route has: a latched publisher's message reaches both the volatile and the transient-local route and
    passes once; a volatile publisher's reaches only one and always passes, also when the same content repeats.
    The counts of the last ``memory`` distinct contents are kept. The content key is the message's ``repr`` (its
    type and every field): serialized bytes would not do, their alignment padding is not always zeroed.
    """

    def __init__(self, routes: int, memory: int = 64) -> None:
        self.routes = routes
        self.memory = memory
        self._counts: OrderedDict[str, list[int]] = OrderedDict()

    def deliveries(self, key: str) -> tuple[int, ...]:
        """How often each route has delivered ``key`` (zeros once forgotten)."""
        return tuple(self._counts.get(key, [0] * self.routes))

    def first(self, route: int, key: str) -> bool:
        """True when this delivery of ``key`` (the message's repr) on ``route`` is new."""
        counts = self._counts.setdefault(key, [0] * self.routes)
        self._counts.move_to_end(key)
        counts[route] += 1
        while len(self._counts) > self.memory:
            self._counts.popitem(last=False)
        return counts[route] > max((n for r, n in enumerate(counts) if r != route), default=0)


def subscribe_volatile_and_latched(node: Node, msg_type: Any, topic: str, callback: Callable[[Any], None],
                                   depth: int = 10) -> FirstArrival:
    """Subscribe ``topic`` reliable volatile (route 0) and reliable transient local (route 1), so that ``callback``
    gets what volatile publishers (``ros2 topic pub``) send and what a latched publisher sent before this node
    started; a message that arrives on both routes is passed once by the returned :class:`FirstArrival`. That a
    volatile publisher cannot reach the transient-local route is expected, so it is not logged as incompatible QoS."""
    gate = FirstArrival(2)

    def route(index: int) -> Callable[[Any], None]:
        def deliver(msg: Any) -> None:
            if gate.first(index, repr(msg)):
                callback(msg)
        return deliver

    node.create_subscription(msg_type, topic, route(0), reliable(depth))
    node.create_subscription(msg_type, topic, route(1), latched(depth),
                             event_callbacks=SubscriptionEventCallbacks(incompatible_qos=lambda event: None))
    return gate
