"""Annotated camera frames: the classification drawn onto the image (no ROS)."""

from __future__ import annotations

import cv2
import numpy as np

ANNOTATE_MIN_WIDTH = 320  # small frames (CIFAR-10: 32 px) are upscaled so the text is readable
_TO_BGR = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
           "mono8": cv2.COLOR_GRAY2BGR}


def annotate(frame: np.ndarray, encoding: str, lines: list[str]) -> np.ndarray:
    """BGR copy of ``frame`` (``encoding``: bgr8 or one of rgb8/rgba8/bgra8/mono8; upscaled to >= 320 px
    wide) with ``lines`` drawn top-left."""
    if encoding != "bgr8" and encoding not in _TO_BGR:
        raise ValueError(f"cannot annotate a {encoding!r} frame; encodings: {['bgr8', *_TO_BGR]}")
    upscale = frame.shape[1] < ANNOTATE_MIN_WIDTH
    if encoding in _TO_BGR:
        bgr = cv2.cvtColor(frame, _TO_BGR[encoding])
    else:  # bgr8: the resize below makes the copy the text is drawn on
        bgr = frame if upscale else np.array(frame)
    if upscale:
        scale = ANNOTATE_MIN_WIDTH / bgr.shape[1]
        bgr = cv2.resize(bgr, (ANNOTATE_MIN_WIDTH, max(1, round(bgr.shape[0] * scale))),
                         interpolation=cv2.INTER_NEAREST)
    for i, line in enumerate(lines):
        org = (8, 22 + 22 * i)
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(bgr, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr
