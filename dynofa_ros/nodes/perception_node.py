"""Perception node: classify camera frames with a switchable Dynamic-OFA network.

Topics (relative, remap from launch):
  in:  ``image`` (sensor_msgs/Image) or ``image/compressed`` (CompressedImage), ``subnet_command``,
       ``platform_state`` (only with ``emulate_domain``)
  out: ``classification`` (ClassificationResult), ``performance_report`` (PerformanceReport), ``image/annotated``
       (only rendered while someone subscribes), ``/diagnostics`` (~1 Hz)

Newest frame wins: the subscription callback only parks the frame; a worker thread runs inference on the
newest parked frame, and every frame replaced before it was processed counts as dropped.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

import cv2
import numpy as np
import rclpy
import rclpy.executors
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from dynofa_ros.msg import ClassificationResult, PerformanceReport, PlatformState, SubnetCommand
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.image_conv import array_to_image, compressed_to_bytes, image_to_array
from dynofa_ros.nodes.qos import QOS_NAMES, image_qos, reliable
from dynofa_ros.supernet.library import default_library_path
from dynofa_ros.supernet.runtime import MODES, DynamicNetwork

TRANSPORTS = ("raw", "compressed")
ANNOTATE_MIN_WIDTH = 320  # small frames (CIFAR-10: 32 px) are upscaled so the text is readable


def annotate(frame: np.ndarray, encoding: str, lines: list[str]) -> np.ndarray:
    """BGR copy of ``frame`` (upscaled to >= 320 px wide) with ``lines`` drawn top-left."""
    conv = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
            "mono8": cv2.COLOR_GRAY2BGR}
    bgr = cv2.cvtColor(frame, conv[encoding]) if encoding in conv else np.array(frame)
    if bgr.shape[1] < ANNOTATE_MIN_WIDTH:
        scale = ANNOTATE_MIN_WIDTH / bgr.shape[1]
        bgr = cv2.resize(bgr, (ANNOTATE_MIN_WIDTH, max(1, round(bgr.shape[0] * scale))),
                         interpolation=cv2.INTER_NEAREST)
    for i, line in enumerate(lines):
        org = (8, 22 + 22 * i)
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


class PerceptionNode(Node):
    """One perception app: frames in, classification + performance report out, level switchable live."""

    def __init__(self, node_name: str = "perception", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        library = P.declare(self, "library", "", "subnet library JSON ('' = shipped default)", read_only=True)
        device = P.declare(self, "device", "cpu", "torch device: cpu or cuda[:N]", read_only=True)
        mode = P.declare(self, "mode", "cache", "runtime mode", read_only=True, choices=MODES)
        threads = P.declare(self, "threads", 0, "torch intra-op threads (0 = torch default)", read_only=True,
                            int_range=(0, 256))
        self.app_id = P.declare(self, "app_id", "app0", "application id used in commands and reports",
                                read_only=True)
        self.transport = P.declare(self, "input_transport", "raw", "subscribe image (raw) or image/compressed",
                                   read_only=True, choices=TRANSPORTS)
        qos = P.declare(self, "qos", "sensor_data", "image subscription QoS", read_only=True, choices=QOS_NAMES)
        self.emulate_domain = P.declare(
            self, "emulate_domain", "",
            "simulated board only: stretch each frame by f_max/f_cur of this DVFS domain ('' = off)", read_only=True)
        errors = [e for e in (P.check_choice("mode", mode, MODES), P.check_choice("qos", qos, QOS_NAMES),
                              P.check_choice("input_transport", self.transport, TRANSPORTS)) if e]
        if not (device == "cpu" or device.startswith("cuda")):
            errors.append(f"device must be cpu or cuda[:N], got {device!r}")
        if errors:
            raise ValueError("; ".join(errors))
        self.library_path = library or str(default_library_path())
        self.net = DynamicNetwork.from_library(self.library_path, device=device, mode=mode,
                                               threads=threads or None)
        self.device = device
        n_levels = len(self.net.levels)
        level = P.declare(self, "level", n_levels - 1, "active subnet level (0 = fastest); settable live",
                          int_range=(0, n_levels - 1))
        self.top_k = P.declare(self, "top_k", 1, "classes per result", int_range=(1, self.net.spec.num_classes))
        self.net.activate(level)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._cond = threading.Condition()
        self._pending: tuple[Any, float] | None = None
        self._stop = threading.Event()
        self.frames_processed = 0
        self.frames_dropped = 0
        self.frames_bad = 0
        self._latency_ema = float("nan")
        self._last_latency = float("nan")
        self._done_times: deque[float] = deque(maxlen=30)
        self._slowdown = 1.0

        self.pub_result = self.create_publisher(ClassificationResult, "classification", reliable())
        self.pub_report = self.create_publisher(PerformanceReport, "performance_report", reliable(50))
        self.pub_annotated = self.create_publisher(Image, "image/annotated", image_qos("sensor_data"))
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", reliable())
        if self.transport == "raw":
            self.create_subscription(Image, "image", self._on_image, image_qos(qos))
        else:
            self.create_subscription(CompressedImage, "image/compressed", self._on_image, image_qos(qos))
        self.create_subscription(SubnetCommand, "subnet_command", self._on_command, reliable())
        if self.emulate_domain:
            self.create_subscription(PlatformState, "platform_state", self._on_platform, reliable())
        self.create_timer(1.0, self._publish_diagnostics)
        self._worker = threading.Thread(target=self._run, name=f"{node_name}-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"app {self.app_id!r}: library {self.library_path} ({n_levels} levels), device {device}, "
            f"level {level} ({self.net.active.name}), input {self.transport}, QoS {qos}")

    # -- parameters and commands --------------------------------------------------------------------
    def _on_set_parameters(self, parameters: list[Parameter]):
        errors = []
        for p in parameters:
            if p.name == "level":
                if not isinstance(p.value, int) or not 0 <= p.value < len(self.net.levels):
                    errors.append(f"level must be an int in 0..{len(self.net.levels) - 1}, got {p.value!r}")
            elif p.name == "top_k":
                if not isinstance(p.value, int) or not 1 <= p.value <= self.net.spec.num_classes:
                    errors.append(f"top_k must be in 1..{self.net.spec.num_classes}, got {p.value!r}")
        if not errors:
            for p in parameters:
                if p.name == "level":
                    self.net.request_level(p.value)  # applied at the next frame boundary
                elif p.name == "top_k":
                    self.top_k = p.value
        return P.result(errors)

    def _on_command(self, msg: SubnetCommand) -> None:
        if msg.app_id != self.app_id:
            return
        if not 0 <= msg.level < len(self.net.levels):
            self.get_logger().warning(f"rejected SubnetCommand level {msg.level}: out of range "
                                      f"0..{len(self.net.levels) - 1} ({msg.reason})")
            return
        if msg.level != self.net.requested_index:
            self.get_logger().info(f"level {self.net.requested_index} -> {msg.level}: {msg.reason}")
        self.set_parameters([Parameter("level", Parameter.Type.INTEGER, int(msg.level))])

    def _on_platform(self, msg: PlatformState) -> None:
        if not msg.simulated:
            return  # a real board slows the real processor: nothing to emulate
        dom = next((d for d in msg.domains if d.name == self.emulate_domain), None)
        if dom is not None and dom.current_frequency > 0:
            top = max(dom.available_frequencies, default=dom.max_frequency) or dom.current_frequency
            self._slowdown = max(1.0, top / dom.current_frequency)

    # -- frames -------------------------------------------------------------------------------------
    def _on_image(self, msg: Image | CompressedImage) -> None:
        with self._cond:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = (msg, time.perf_counter())
            self._cond.notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if self._pending is None:
                    self._cond.wait(0.1)
                item, self._pending = self._pending, None
            if item is not None:
                self.process(item[0])

    def _decode(self, msg: Image | CompressedImage) -> tuple[np.ndarray, str]:
        if isinstance(msg, CompressedImage):
            return compressed_to_bytes(msg), "jpeg"
        return image_to_array(msg), msg.encoding

    def process(self, msg: Image | CompressedImage) -> ClassificationResult | None:
        """Classify one frame and publish its outputs; a bad frame is logged and skipped (returns None)."""
        start = time.perf_counter()
        try:
            frame, encoding = self._decode(msg)
            inference = self.net.run_frames(frame, encoding)
        except ValueError as exc:
            self.frames_bad += 1
            self.get_logger().warning(f"skipped bad frame (stamp {P.stamp_s(msg.header.stamp):.3f}): {exc}",
                                      throttle_duration_sec=1.0)
            return None
        probs = torch.softmax(inference.logits[0].float(), dim=0)
        scores, classes = probs.topk(self.top_k)
        scores, classes = scores.tolist(), classes.tolist()
        latency = time.perf_counter() - start
        if self._slowdown > 1.0:  # simulated board below its top frequency: emulate the slower processor
            time.sleep(latency * (self._slowdown - 1.0))
            latency = time.perf_counter() - start
        now = time.perf_counter()
        self._done_times.append(now)
        self.frames_processed += 1
        self._last_latency = latency
        ema = self._latency_ema
        self._latency_ema = latency if math.isnan(ema) else 0.9 * ema + 0.1 * latency
        level = self.net.levels[inference.level]
        names = self.net.spec.class_names

        result = ClassificationResult(header=msg.header, app_id=self.app_id, class_ids=classes,
                                      labels=[names[c] for c in classes], scores=scores,
                                      level=inference.level, latency=latency)
        self.pub_result.publish(result)
        self.pub_report.publish(PerformanceReport(
            header=msg.header, app_id=self.app_id, level=inference.level, level_name=level.name,
            latency=latency, latency_smoothed=self._latency_ema, throughput=self.throughput(),
            expected_accuracy=float("nan") if level.top1 is None else level.top1,
            frames_processed=self.frames_processed, frames_dropped=self.frames_dropped, device=self.device,
            energy_per_frame=float("nan")))
        if self.pub_annotated.get_subscription_count() > 0:
            image = frame if encoding != "jpeg" else cv2.imdecode(frame, cv2.IMREAD_COLOR)
            lines = [f"{names[classes[0]]} {scores[0]:.2f}", f"level {inference.level} ({level.name})",
                     f"{latency * 1e3:.1f} ms"]
            bgr = annotate(image, "bgr8" if encoding == "jpeg" else encoding, lines)
            self.pub_annotated.publish(array_to_image(bgr, "bgr8", msg.header))
        return result

    def throughput(self) -> float:
        """Processed frames per second over the last (up to) 30 frames."""
        times = self._done_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def _publish_diagnostics(self) -> None:
        idle = not self._done_times or time.perf_counter() - self._done_times[-1] > 2.0
        level, message = (P.WARN, "no frames in the last 2 s") if idle else (P.OK, "running")
        if self.frames_bad and not idle:
            message = f"running; {self.frames_bad} bad frames skipped"
        values = {"app_id": self.app_id, "frame_rate_hz": f"{self.throughput():.2f}",
                  "latency_ms": f"{self._last_latency * 1e3:.2f}", "level": self.net.active_index,
                  "level_name": self.net.active.name, "frames_processed": self.frames_processed,
                  "frames_dropped": self.frames_dropped, "frames_bad": self.frames_bad,
                  "emulated_slowdown": f"{self._slowdown:.2f}"}
        self.pub_diag.publish(P.diagnostic(self, f"dynofa perception: {self.app_id}", level, message, values,
                                           hardware_id=self.device))

    def destroy_node(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros perception_node``."""
    rclpy.init(args=args)
    node = PerceptionNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
