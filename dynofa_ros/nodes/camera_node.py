"""Camera source node: publish frames from CIFAR-10 test, an image folder, a video file or an OpenCV camera.

Topics: ``image`` (sensor_msgs/Image) or ``image/compressed`` (JPEG), and ``image/label``: a
ClassificationResult (app_id ``ground_truth``, class_ids = [true class], -1 when unknown) with the same
header as the frame, so an evaluator can match results to labels by stamp.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dynofa_ros.msg import ClassificationResult
from dynofa_ros.nodes import params as P
from dynofa_ros.nodes.image_conv import array_to_compressed, array_to_image
from dynofa_ros.nodes.lifecycle import ManagedNode
from dynofa_ros.nodes.process import spin_node
from dynofa_ros.nodes.qos import QOS_NAMES, image_qos, reliable
from dynofa_ros.nodes.sources import SOURCE_KINDS, open_source, resize

ENCODINGS = ("rgb8", "bgr8", "mono8", "jpeg")
GROUND_TRUTH = "ground_truth"


class CameraNode(ManagedNode):
    """Publishes frames at ``rate_hz`` (settable live) with their true label beside them.

    Lifecycle: configure opens the source (a missing or unreadable dataset, folder or video fails here),
    activate starts publishing, deactivate pauses, cleanup closes the source.
    """

    def __init__(self, node_name: str = "camera", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.kind = P.declare(self, "source", "cifar10", "frame source", read_only=True, choices=SOURCE_KINDS)
        self.path = P.declare(self, "path", "", "cifar10: a dataset whose test split is played ('' = the shipped "
                              "CIFAR-10 test images); folder: an image folder; video: a video file", read_only=True)
        self.index = P.declare(self, "camera_index", 0, "OpenCV camera index (source camera)", read_only=True,
                               int_range=(0, 64))
        self.rate_hz = P.declare(self, "rate_hz", 30.0, "publish rate [Hz]; settable live",
                                 float_range=(0.1, 1000.0))
        self.width = P.declare(self, "width", 0, "output width [px] (0 = native)", read_only=True,
                               int_range=(0, 8192))
        self.height = P.declare(self, "height", 0, "output height [px] (0 = native)", read_only=True,
                                int_range=(0, 8192))
        self.encoding = P.declare(self, "encoding", "rgb8", "published encoding (jpeg: image/compressed)",
                                  read_only=True, choices=ENCODINGS)
        self.frame_id = P.declare(self, "frame_id", "camera", "header frame_id", read_only=True)
        self.loop = P.declare(self, "loop", True, "restart the source at its end", read_only=True)
        self.seed = P.declare(self, "seed", 0, "shuffle seed (cifar10)", read_only=True, int_range=(0, 2**31 - 1))
        self.max_frames = P.declare(self, "max_frames", 0, "stop after this many frames (0 = no limit)",
                                    read_only=True, int_range=(0, 2**31 - 1))
        self.qos = P.declare(self, "qos", "reliable", "image publisher QoS", read_only=True, choices=QOS_NAMES)
        errors = [e for e in (P.check_choice("source", self.kind, SOURCE_KINDS),
                              P.check_choice("qos", self.qos, QOS_NAMES),
                              P.check_choice("encoding", self.encoding, ENCODINGS)) if e]
        if errors:
            raise ValueError("; ".join(errors))
        self.source_errors = 0
        self.published = 0
        self.finished = False
        self._frames: Iterator[tuple[np.ndarray, int]] | None = None
        self._timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.start()

    # -- lifecycle ----------------------------------------------------------------------------------
    def configure(self) -> None:
        self._frames = open_source(self.kind, self.path, self.index, self.loop, self.seed,
                                   on_error=self._on_source_error)
        self.published, self.finished = 0, False
        if self.encoding == "jpeg":
            self.pub_image = self.create_lifecycle_publisher(CompressedImage, "image/compressed",
                                                             image_qos(self.qos, 5))
        else:
            self.pub_image = self.create_lifecycle_publisher(Image, "image", image_qos(self.qos, 5))
        self.pub_label = self.create_lifecycle_publisher(ClassificationResult, "image/label", reliable(50))
        what = self.path or ("the shipped CIFAR-10 test images" if self.kind == "cifar10" else self.index)
        self.get_logger().info(f"source {self.kind} {what} at {self.rate_hz:g} Hz, {self.encoding}, QoS {self.qos}")

    def activate(self) -> None:
        self._timer = self.create_timer(1.0 / self.rate_hz, self._tick)

    def deactivate(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def cleanup(self) -> None:
        self.destroy_lifecycle_publisher(self.pub_image)
        self.destroy_lifecycle_publisher(self.pub_label)
        self._frames = None

    def _on_set_parameters(self, parameters: list[Parameter]):
        rates = [p.value for p in parameters if p.name == "rate_hz"]
        errors = [f"rate_hz must be in (0, 1000], got {r!r}" for r in rates
                  if not isinstance(r, float) or not 0 < r <= 1000]
        if rates and not errors:
            self.rate_hz = rates[-1]
            if self._timer is not None:
                self.deactivate()
                self.activate()
        return P.result(errors)

    def _on_source_error(self, text: str) -> None:
        self.source_errors += 1
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _tick(self) -> None:
        if self.finished:
            return
        try:
            rgb, label = next(self._frames)
        except StopIteration:
            self.finished = True
            self.get_logger().info(f"source exhausted after {self.published} frames")
            return
        self.publish_frame(resize(rgb, self.width, self.height), label)
        if self.max_frames and self.published >= self.max_frames:
            self.finished = True

    def sample_frame(self) -> np.ndarray:
        """The next frame this camera publishes, as RGB at its published size; it is still published."""
        if self._frames is None:
            raise ValueError("the camera is not configured")
        rgb, label = next(self._frames)
        self._frames = itertools.chain([(rgb, label)], self._frames)
        return resize(rgb, self.width, self.height)

    def publish_frame(self, rgb, label: int) -> Header:
        """Publish one RGB frame (converted to the configured encoding) and its label; return the header."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
        if self.encoding == "jpeg":
            self.pub_image.publish(array_to_compressed(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), header))
        else:
            conv = {"bgr8": cv2.COLOR_RGB2BGR, "mono8": cv2.COLOR_RGB2GRAY}.get(self.encoding)
            self.pub_image.publish(array_to_image(cv2.cvtColor(rgb, conv) if conv is not None else rgb,
                                                  self.encoding, header))
        self.pub_label.publish(ClassificationResult(header=header, app_id=GROUND_TRUTH, class_ids=[int(label)],
                                                    scores=[1.0], level=-1, latency=0.0))
        self.published += 1
        return header


def main(args: list[str] | None = None) -> None:
    """``ros2 run dynofa_ros camera_node``."""
    sys.exit(spin_node(CameraNode, args))


if __name__ == "__main__":
    main()
