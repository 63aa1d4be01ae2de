"""Perception node: classify camera frames with a switchable Dynamic-OFA network.

Topics (relative, remap from launch):
  in:  ``image`` (sensor_msgs/Image) or ``image/compressed`` (CompressedImage), ``subnet_command``,
       ``manager_heartbeat``, ``platform_state`` (only with ``emulate_domain``)
  out: ``classification`` (ClassificationResult), ``performance_report`` (PerformanceReport), ``image/annotated``
       (only rendered while someone subscribes), ``/diagnostics`` (~1 Hz)

Newest frame wins: the subscription callback parks the frame; a worker thread runs inference on the newest parked
frame, and every frame replaced before it was processed counts as dropped. A frame that arrives while the worker
runs the one before is decoded and preprocessed in the callback, beside it (frames back to back: the two overlap);
one that finds the worker idle is left whole to the worker (frames at a camera's pace: one thread wakes per frame).
Frames that never arrive are estimated from the gaps in the arriving frames' header stamps and count as lost
(:mod:`dynofa_ros.report.arrivals`). With ``qos`` auto (the default) the image subscription is reliable while every
publisher of the topic is, else best effort, and follows the publishers as they come and go. A frame whose
processing fails (bad input, or anything else: CUDA out of memory, an OpenCV error) is logged, counted and
skipped; the worker carries on, and /diagnostics says ERROR while failures keep coming.

Managed or not: the resource manager publishes a ``ManagerHeartbeat`` every control period. Only a heartbeat
naming this app counts (a SubnetCommand may come from a user, so it does not). After ``manager_timeout_s``
without one the app is unmanaged: /diagnostics says WARN "unmanaged", every PerformanceReport has ``unmanaged``
set, and with ``unmanaged_level`` >= 0 the app falls back to that level; the next heartbeat makes it managed again.
A rejected SubnetCommand (level out of range, empty app id, an app neither this node's nor one the manager names in
its heartbeat) is logged once per cause and counted on /diagnostics.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

from dynofa_ros.manager.presence import ManagerWatch
from dynofa_ros.msg import ClassificationResult, ManagerHeartbeat, PerformanceReport, PlatformState, SubnetCommand
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.convert import msg_to_state
from dynofa_ros.nodes.image_conv import array_to_image, compressed_to_bytes, image_to_array
from dynofa_ros.nodes.lifecycle import ManagedNode
from dynofa_ros.nodes.process import spin_node
from dynofa_ros.nodes.qos import MATCHED, QOS_NAMES, SubscriptionEventCallbacks, image_qos, matching_image_qos, reliable
from dynofa_ros.platform.sim.emulation import dvfs_slowdown, stretch_frame
from dynofa_ros.report.annotate import annotate
from dynofa_ros.report.arrivals import ArrivalGaps, serialized_stamp
from dynofa_ros.supernet.library import library_path
from dynofa_ros.supernet.preprocess import decode_compressed
from dynofa_ros.supernet.runtime import MODES, DynamicNetwork, Prediction, PreparedFrames, set_torch_threads
from dynofa_ros.supernet.serving import AUTO, backends_line
from dynofa_ros.supernet.serving import CHOICES as BACKEND_CHOICES
from dynofa_ros.supernet.stats import FrameStats

TRANSPORTS = ("raw", "compressed")
IMAGE_QOS = (MATCHED, *QOS_NAMES)
MATCH_PERIOD_S = 0.5  # qos auto: how often the image topic's publishers are looked up
IDLE_S = 2.0  # no frame for this long: diagnostics warn, and a gap this long in the stamps is a pause, not loss
MAX_LEVELS = 256  # bounds of the level and top_k parameters before a library is loaded
MAX_CLASSES = 100_000
OWN_TIMES_KEPT = 4096  # frame times kept per level (own_times_s)


@dataclass(frozen=True)
class ReadyFrame:
    """A frame decoded and preprocessed for its forward pass."""

    frame: np.ndarray
    encoding: str
    prepared: PreparedFrames
    seconds: float  # decoding and preprocessing it took


@dataclass(frozen=True)
class ParkedFrame:
    """A received frame waiting for the inference thread, made ready ahead or not yet."""

    msg: Image | CompressedImage
    ready: ReadyFrame | None = None


class PerceptionNode(ManagedNode):
    """One perception app: frames in, classification + performance report out, level switchable live.

    Lifecycle: configure loads the library, activate subscribes and starts inference, deactivate stops it,
    cleanup frees the network (``autostart``, default true, does the first two at construction).
    """

    def __init__(self, node_name: str = "perception", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.library = P.declare(self, "library", "", "subnet library JSON, or a shipped model: mbv3, vit ('' = mbv3)",
                                  read_only=True)
        self.device = P.declare(self, "device", "cpu", "torch device: cpu or cuda[:N]", read_only=True)
        self.mode = P.declare(self, "mode", "cache", "runtime mode", read_only=True, choices=MODES)
        self.backend = P.declare(self, "backend", AUTO, "what serves the cached levels: torch (eager), onnxruntime, "
                                 "cuda-graph, or auto (the fastest this machine has)", read_only=True,
                                 choices=BACKEND_CHOICES)
        self.threads = P.declare(self, "threads", 0, "torch intra-op threads, process-wide: give every perception "
                                 "node of a process the same (0 = torch default)", read_only=True, int_range=(0, 256))
        self.app_id = P.declare(self, "app_id", "app0", "application id used in commands and reports",
                                read_only=True)
        self.transport = P.declare(self, "input_transport", "raw", "subscribe image (raw) or image/compressed",
                                   read_only=True, choices=TRANSPORTS)
        self.qos = P.declare(self, "qos", MATCHED, "image subscription QoS, keep last 1: auto (reliable while every "
                             "publisher of the topic is reliable, else best effort), sensor_data (= best_effort) or "
                             "reliable", read_only=True, choices=IMAGE_QOS)
        self.emulate_domain = P.declare(
            self, "emulate_domain", "",
            "simulated board only: stretch each frame by f_max/f_cur of this DVFS domain ('' = off)", read_only=True)
        P.declare(self, "level", -1, "active subnet level (0 = fastest; -1 at start-up: the most accurate); "
                  "settable live", int_range=(-1, MAX_LEVELS - 1))
        self.top_k = P.declare(self, "top_k", 1, "classes per result", int_range=(1, MAX_CLASSES))
        self.manager_timeout_s = P.declare(
            self, "manager_timeout_s", 3.0, "unmanaged after this long without a heartbeat of a manager managing "
            "this app; keep it above a few of the manager's period_s [s] (0 = off)", read_only=True,
            float_range=(0.0, 600.0))
        self.unmanaged_level = P.declare(self, "unmanaged_level", -1, "level to fall back to while unmanaged "
                                         "(-1 = keep the current level)", read_only=True,
                                         int_range=(-1, MAX_LEVELS - 1))
        errors = [e for e in (P.check_choice("mode", self.mode, MODES), P.check_choice("qos", self.qos, IMAGE_QOS),
                              P.check_choice("input_transport", self.transport, TRANSPORTS),
                              P.check_choice("backend", self.backend, BACKEND_CHOICES)) if e]
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            errors.append(f"device must be cpu or cuda[:N], got {self.device!r}")
        if errors:
            raise ValueError("; ".join(errors))
        self.net: DynamicNetwork | None = None
        self.library_path = ""
        self._msg_type = Image if self.transport == "raw" else CompressedImage
        self._cond = threading.Condition()
        self._pending: ParkedFrame | None = None  # the newest frame
        self._busy = False  # the worker is running a frame
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._active_subs: list[Any] = []
        self._image_sub = None
        self.image_qos = ""  # the image subscription's QoS while active
        self._image_topic = ""
        self._watch_timer = None
        self._qos_timer = None
        self.manager_watch = ManagerWatch(self.manager_timeout_s)
        self._manager_apps: set[str] = set()  # apps the last heartbeat named
        self._reset_counters()
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable())
        self.create_timer(1.0, self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.start()

    def _reset_counters(self) -> None:
        self.stats = FrameStats()
        self.frames_dropped = 0
        self.arrivals = ArrivalGaps(pause_s=IDLE_S)
        self.frames_bad = 0
        self.frames_failed = 0
        self._failed_at_last_diag = 0
        self._last_failure = ""
        self._slowdown = 1.0
        # per level: the newest frame times on this processor, before the simulated board's slowdown
        self.own_times_s: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=OWN_TIMES_KEPT))
        self._annotated_subscribers = 0  # refreshed by the 1 Hz diagnostics timer, not per frame

    # -- lifecycle ----------------------------------------------------------------------------------
    def configure(self) -> None:
        if self.threads:
            set_torch_threads(self.threads)
        self.library_path = str(library_path(self.library))
        net = DynamicNetwork.from_library(self.library_path, device=self.device, mode=self.mode, backend=self.backend)
        n_levels, n_classes = len(net.levels), net.spec.num_classes
        level = self.get_parameter("level").value
        if level >= n_levels:
            raise ValueError(f"level {level} is not a level of {self.library_path} (0..{n_levels - 1})")
        if self.top_k > n_classes:
            raise ValueError(f"top_k {self.top_k} is more than the library's {n_classes} classes")
        if self.unmanaged_level >= n_levels:
            raise ValueError(f"unmanaged_level {self.unmanaged_level} is not a level of {self.library_path} "
                             f"(0..{n_levels - 1}, or -1)")
        self.net = net
        if level < 0:
            self.set_parameters([Parameter("level", Parameter.Type.INTEGER, n_levels - 1)])
            level = n_levels - 1
        net.activate(level)
        self._reset_counters()
        self.pub_result = self.create_lifecycle_publisher(ClassificationResult, "classification", reliable())
        self.pub_report = self.create_lifecycle_publisher(PerformanceReport, "performance_report", reliable(50))
        self.pub_annotated = self.create_lifecycle_publisher(Image, "image/annotated", image_qos("sensor_data"))
        self.get_logger().info(
            f"app {self.app_id!r}: library {self.library_path} ({n_levels} levels), device {self.device}, "
            f"backend {backends_line(net.level_backends)}, level {level} ({net.active.name}), input {self.transport}, "
            f"QoS {self.qos}")

    def activate(self) -> None:
        self._image_topic = self.resolve_topic_name("image" if self.transport == "raw" else "image/compressed")
        self.arrivals.restart()  # frames sent while inactive were not lost on the way
        if self.qos == MATCHED:
            self._subscribe_image(matching_image_qos(self.get_publishers_info_by_topic(self._image_topic)))
            self._qos_timer = self.create_timer(MATCH_PERIOD_S, self._match_publishers)
        else:
            self._subscribe_image(self.qos)
        self._active_subs = [
            self.create_subscription(SubnetCommand, "subnet_command", self._on_command, reliable()),
            self.create_subscription(ManagerHeartbeat, "manager_heartbeat", self._on_heartbeat, reliable())]
        self.manager_watch = ManagerWatch(self.manager_timeout_s)  # an inactive spell is no absence of the manager
        if self.manager_timeout_s:
            self._watch_timer = self.create_timer(min(1.0, self.manager_timeout_s / 3), self._check_manager)
        if self.emulate_domain:
            self._active_subs.append(
                self.create_subscription(PlatformState, "platform_state", self._on_platform, reliable()))
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name=f"{self.get_name()}-inference", daemon=True)
        self._worker.start()

    def deactivate(self) -> None:
        for sub in [self._image_sub, *self._active_subs]:
            if sub is not None:
                self.destroy_subscription(sub)
        self._image_sub, self._active_subs, self.image_qos = None, [], ""
        for timer in (self._watch_timer, self._qos_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._watch_timer = self._qos_timer = None
        self._stop.set()
        with self._cond:
            self._pending = None
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
            self._worker = None

    def cleanup(self) -> None:
        for pub in (self.pub_result, self.pub_report, self.pub_annotated):
            self.destroy_lifecycle_publisher(pub)
        self.net = None

    # -- parameters and commands --------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]):
        net = self.net  # None until configured: values are then checked by configure
        errors = []
        for p in parameters:
            if p.name == "level" and net is not None:
                if not isinstance(p.value, int) or not 0 <= p.value < len(net.levels):
                    errors.append(f"level must be an int in 0..{len(net.levels) - 1}, got {p.value!r}")
            elif p.name == "top_k" and net is not None:
                if not isinstance(p.value, int) or not 1 <= p.value <= net.spec.num_classes:
                    errors.append(f"top_k must be in 1..{net.spec.num_classes}, got {p.value!r}")
        if not errors:
            for p in parameters:
                if p.name == "level" and net is not None:
                    net.request_level(p.value)  # applied at the next frame boundary
                elif p.name == "top_k":
                    self.top_k = p.value
        return P.result(errors)

    def _on_command(self, msg: SubnetCommand) -> None:
        if msg.app_id != self.app_id:
            if not msg.app_id.strip():
                self.rejections.reject("SubnetCommand", "empty app_id",
                                       f"level {msg.level} for app {msg.app_id!r}: empty app_id ({msg.reason})")
            elif msg.app_id not in self._manager_apps:  # another app's command when the manager names it
                self.rejections.reject("SubnetCommand", f"unknown app {msg.app_id!r}",
                                       f"level {msg.level} for unknown app {msg.app_id!r}: not this node's app "
                                       f"{self.app_id!r} nor one the manager manages {sorted(self._manager_apps)} "
                                       f"({msg.reason})")
            return
        n_levels = len(self.net.levels)
        if not 0 <= msg.level < n_levels:
            self.rejections.reject("SubnetCommand", f"level outside 0..{n_levels - 1}",
                                   f"level {msg.level}: out of range 0..{n_levels - 1} ({msg.reason})")
            return
        self._switch(int(msg.level), msg.reason)

    def _switch(self, level: int, why: str) -> None:
        if level != self.net.requested_index:
            self.get_logger().info(f"level {self.net.requested_index} -> {level}: {why}")
        self.set_parameters([Parameter("level", Parameter.Type.INTEGER, level)])

    def _on_heartbeat(self, msg: ManagerHeartbeat) -> None:
        self._manager_apps = set(msg.app_ids)
        if self.app_id in self._manager_apps and self.manager_watch.heard(time.monotonic()):
            self.get_logger().info(f"managed again: the manager is back (policy {msg.policy or 'starting'})")

    def _check_manager(self) -> None:
        if not self.manager_watch.check(time.monotonic()):
            return
        fallback = f"; falling back to level {self.unmanaged_level}" if self.unmanaged_level >= 0 else ""
        self.get_logger().warning(f"unmanaged: no manager heartbeat for app {self.app_id!r} in "
                                  f"{self.manager_timeout_s:g} s{fallback}")
        if self.unmanaged_level >= 0:
            self._switch(self.unmanaged_level, "unmanaged: no manager")

    def _on_platform(self, msg: PlatformState) -> None:
        if msg.simulated:  # a real board slows the real processor: nothing to emulate
            self._slowdown = dvfs_slowdown(msg_to_state(msg), self.emulate_domain)

    # -- frames -------------------------------------------------------------------------------------
    def _subscribe_image(self, qos: str) -> None:
        """(Re)subscribe the image topic with the QoS named ``qos``."""
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
        # with qos auto a publisher of the other reliability is expected until the next match: no warning
        events = SubscriptionEventCallbacks(incompatible_qos=lambda event: None) if self.qos == MATCHED else None
        self._image_sub = self.create_subscription(self._msg_type, self._image_topic, self._on_image, image_qos(qos),
                                                   raw=True, event_callbacks=events)
        self.image_qos = qos

    def _match_publishers(self) -> None:
        """qos auto: subscribe anew when the topic's publishers now call for the other reliability."""
        publishers = self.get_publishers_info_by_topic(self._image_topic)
        qos = matching_image_qos(publishers)
        if publishers and qos != self.image_qos:  # no publisher: keep what the last ones called for
            self.get_logger().info(f"image QoS {self.image_qos} -> {qos}: matches the publishers of "
                                   f"{self._image_topic}")
            self._subscribe_image(qos)

    def _on_image(self, data: bytes) -> None:
        stamp = serialized_stamp(data)
        if stamp is not None:
            self.arrivals.add(stamp)
        busy = self._busy  # the worker runs a frame: prepare this one beside it
        try:
            msg = deserialize_message(data, self._msg_type)
            ready = self._ready(msg) if busy else None
        except Exception as exc:  # a frame that cannot be read must not stop the node
            self._failed(exc)
            return
        if busy and ready is None:
            return  # a bad frame, counted and logged
        with self._cond:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = ParkedFrame(msg, ready)
            self._cond.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if self._pending is None:
                    self._cond.wait(0.1)
                item, self._pending = self._pending, None
                self._busy = item is not None
            if item is None:
                continue
            try:
                ready = item.ready or self._ready(item.msg)
                if ready is not None:
                    self._finish(item.msg, ready)
            except Exception as exc:  # one failed frame (CUDA OOM, cv2.error...) must not stop the app
                if self._stop.is_set():
                    return  # deactivating or shutting down: the frame in flight is not a failure
                self._failed(exc)
            finally:
                self._busy = False

    def _failed(self, exc: Exception) -> None:
        self.frames_failed += 1
        self._last_failure = f"{type(exc).__name__}: {exc}"
        self.get_logger().error(f"frame failed, skipped: {self._last_failure}", throttle_duration_sec=5.0)

    @staticmethod
    def _decode(msg: Image | CompressedImage) -> tuple[np.ndarray, str]:
        """The frame as an array and its encoding; compressed frames are decoded here, once, to bgr8."""
        if isinstance(msg, CompressedImage):
            return decode_compressed(compressed_to_bytes(msg)), "bgr8"
        return image_to_array(msg), msg.encoding

    def _ready(self, msg: Image | CompressedImage) -> ReadyFrame | None:
        """Decode and preprocess one frame; a bad frame is logged and skipped (None)."""
        start = time.perf_counter()
        try:
            frame, encoding = self._decode(msg)
            prepared = self.net.prepare(frame, encoding)
        except ValueError as exc:
            self.frames_bad += 1
            self.get_logger().warning(f"skipped bad frame (stamp {P.stamp_s(msg.header.stamp):.3f}): {exc}",
                                      throttle_duration_sec=1.0)
            return None
        return ReadyFrame(frame, encoding, prepared, time.perf_counter() - start)

    def _finish(self, msg: Image | CompressedImage, ready: ReadyFrame) -> ClassificationResult:
        """Run a ready frame and publish its outputs."""
        start = time.perf_counter()
        pred = self.net.classify_prepared(ready.prepared, self.top_k)[0]
        self.own_times_s[pred.level].append(ready.seconds + time.perf_counter() - start)
        # simulated board below its top frequency: emulate the slower processor
        latency = stretch_frame(start - ready.seconds, self._slowdown)
        self.stats.update(latency, time.perf_counter())
        level = self.net.levels[pred.level]
        result = ClassificationResult(header=msg.header, app_id=self.app_id, class_ids=list(pred.class_ids),
                                      labels=list(pred.labels), scores=list(pred.scores), level=pred.level,
                                      latency=latency)
        self.pub_result.publish(result)
        self.pub_report.publish(PerformanceReport(
            header=msg.header, app_id=self.app_id, level=pred.level, level_name=pred.level_name,
            latency=latency, latency_smoothed=self.stats.latency_ema_s, throughput=self.stats.throughput_hz,
            expected_accuracy=float("nan") if level.top1 is None else level.top1,
            frames_processed=self.stats.processed, frames_dropped=self.frames_dropped,
            frames_lost=self.arrivals.lost, device=self.device,
            unmanaged=not self.manager_watch.managed, energy_per_frame=float("nan")))
        if self._annotated_subscribers > 0:
            self._publish_annotated(ready.frame, ready.encoding, pred, latency, msg)
        return result

    def _publish_annotated(self, frame: np.ndarray, encoding: str, pred: Prediction, latency: float,
                           msg: Image | CompressedImage) -> None:
        lines = [f"{pred.label} {pred.score:.2f}", f"level {pred.level} ({pred.level_name})",
                 f"{latency * 1e3:.1f} ms"]
        self.pub_annotated.publish(array_to_image(annotate(frame, encoding, lines), "bgr8", msg.header))

    @property
    def frames_processed(self) -> int:
        return self.stats.processed

    def _publish_diagnostics(self) -> None:
        if self.lifecycle_state != "active" or self.net is None:
            self.pub_diag.publish(P.diagnostic(self, f"dynofa perception: {self.app_id}", P.OK,
                                               f"{self.lifecycle_state}: not processing frames",
                                               {"app_id": self.app_id, "lifecycle_state": self.lifecycle_state},
                                               hardware_id=self.device))
            return
        self._annotated_subscribers = self.pub_annotated.get_subscription_count()
        last = self.stats.last_t
        idle = last is None or time.perf_counter() - last > IDLE_S
        failed_now = self.frames_failed - self._failed_at_last_diag
        self._failed_at_last_diag = self.frames_failed
        silent_s = self.manager_watch.silent_for(time.monotonic())
        problems = [p for p in (f"unmanaged: no manager for {silent_s:.1f} s" if not self.manager_watch.managed else "",
                                f"no frames in the last {IDLE_S:g} s" if idle else "") if p]
        if failed_now:
            level, message = P.ERROR, "; ".join([f"{failed_now} frames failed in the last second; last: "
                                                 f"{self._last_failure}", *problems])
        elif problems:
            level, message = P.WARN, "; ".join(problems)
        else:
            level, message = P.OK, f"running; {self.frames_bad} bad frames skipped" if self.frames_bad else "running"
        values = {"app_id": self.app_id, "frame_rate_hz": f"{self.stats.throughput_hz:.2f}",
                  "latency_ms": f"{self.stats.last_latency_s * 1e3:.2f}", "level": self.net.active_index,
                  "level_name": self.net.active.name, "frames_processed": self.stats.processed,
                  "frames_dropped": self.frames_dropped, "frames_lost": self.arrivals.lost,
                  "image_qos": self.image_qos, "frames_bad": self.frames_bad,
                  "frames_failed": self.frames_failed, "emulated_slowdown": f"{self._slowdown:.2f}",
                  "managed": self.manager_watch.managed, "manager_silent_s": f"{silent_s:.1f}",
                  **self.rejections.diagnostic_values()}
        self.pub_diag.publish(P.diagnostic(self, f"dynofa perception: {self.app_id}", level, message, values,
                                           hardware_id=self.device))


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros perception_node``."""
    sys.exit(spin_node(PerceptionNode, args))


if __name__ == "__main__":
    main()
