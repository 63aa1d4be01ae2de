"""Image ⇄ numpy conversion: every encoding, row padding, bad images, cv_bridge parity."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import Image  # noqa: E402

from dynofa_ros.nodes.image_conv import (  # noqa: E402
    CHANNELS,
    array_to_compressed,
    array_to_image,
    compressed_to_bytes,
    image_to_array,
    image_to_array_own,
)


def _frame(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    c = CHANNELS[encoding]
    a = np.arange(h * w * c, dtype=np.uint16).astype(np.uint8)
    return a.reshape(h, w) if c == 1 else a.reshape(h, w, c)


@pytest.mark.parametrize("encoding", sorted(CHANNELS))
def test_round_trip_every_encoding(encoding):
    frame = _frame(encoding)
    msg = array_to_image(frame, encoding)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 7 * CHANNELS[encoding], encoding)
    back = image_to_array_own(msg)
    np.testing.assert_array_equal(back, frame)
    assert not back.flags.owndata  # a view on msg.data, no copy


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8"])
def test_step_padding_is_skipped(encoding):
    frame = _frame(encoding, 4, 3)
    c = CHANNELS[encoding]
    padded = np.zeros((4, 3 * c + 5), np.uint8)
    padded[:, : 3 * c] = frame.reshape(4, -1)
    msg = Image(height=4, width=3, encoding=encoding, step=3 * c + 5, is_bigendian=1)
    msg.data = padded.tobytes()
    np.testing.assert_array_equal(image_to_array_own(msg), frame)


@pytest.mark.parametrize(("change", "error"), [
    ({"encoding": "yuv422"}, "unsupported image encoding"),
    ({"height": 6}, "needs"),
    ({"step": 20}, "step 20 is smaller"),
    ({"width": 0}, "empty image"),
])
def test_bad_images_raise_value_error(change, error):
    msg = array_to_image(_frame("rgb8"), "rgb8")
    for k, v in change.items():
        setattr(msg, k, v)
    with pytest.raises(ValueError, match=error):
        image_to_array_own(msg)


def test_empty_data_is_rejected():
    msg = Image(height=2, width=2, encoding="mono8", step=2)
    with pytest.raises(ValueError, match="needs 4"):
        image_to_array(msg)


def test_array_to_image_checks_shape_and_dtype():
    with pytest.raises(ValueError, match="H×W×3"):
        array_to_image(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="uint8"):
        array_to_image(np.zeros((4, 4, 3), np.float32), "rgb8")


def test_compressed_round_trip():
    bgr = np.full((16, 16, 3), 128, np.uint8)
    msg = array_to_compressed(bgr)
    assert msg.format == "jpeg"
    import cv2

    decoded = cv2.imdecode(compressed_to_bytes(msg), cv2.IMREAD_COLOR)
    assert decoded.shape == bgr.shape and abs(int(decoded.mean()) - 128) <= 2


@pytest.mark.parametrize("encoding", sorted(CHANNELS))
def test_cv_bridge_gives_the_same_arrays(encoding):
    pytest.importorskip("cv_bridge", reason="cv_bridge not installed (no wheel)")  # image_to_array then uses it
    msg = array_to_image(_frame(encoding), encoding)
    np.testing.assert_array_equal(image_to_array(msg), image_to_array_own(msg))
