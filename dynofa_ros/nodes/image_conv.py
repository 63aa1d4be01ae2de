"""sensor_msgs/Image ⇄ numpy without cv_bridge (which has no wheel), and cv_bridge when it imports.

Supported encodings: rgb8, bgr8, mono8, rgba8, bgra8 (8-bit channels, so ``is_bigendian`` does not change
the bytes; it is accepted either way). Row padding (``step`` > width × channels) is handled with a strided
view: reading never copies the pixel data.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}

try:  # on a ROS 2 distro; both paths return the same arrays (tested where cv_bridge exists)
    from cv_bridge import CvBridge

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:
    _BRIDGE = None


def _channels(encoding: str) -> int:
    channels = CHANNELS.get(encoding)
    if channels is None:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(CHANNELS)}")
    return channels


def image_to_array_own(msg: Image) -> np.ndarray:
    """H×W×C (or H×W for mono8) uint8 view of ``msg.data``; ValueError for a bad or empty image."""
    channels = _channels(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h == 0 or w == 0:
        raise ValueError(f"empty image ({w}x{h})")
    if step < w * channels:
        raise ValueError(f"step {step} is smaller than width {w} x {channels} channels ({msg.encoding})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * h:
        raise ValueError(f"image data has {data.size} bytes, {msg.encoding} {w}x{h} with step {step} "
                         f"needs {step * h}")
    rows = data[: step * h].reshape(h, step)[:, : w * channels]
    return rows.reshape(h, w) if channels == 1 else rows.reshape(h, w, channels)


def image_to_array(msg: Image) -> np.ndarray:
    """Like :func:`image_to_array_own`, through cv_bridge when it is installed."""
    if _BRIDGE is None:
        return image_to_array_own(msg)
    _channels(msg.encoding)
    try:
        return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    except Exception as exc:  # cv_bridge raises CvBridgeError/TypeError for bad sizes
        raise ValueError(f"cv_bridge cannot convert the image: {exc}") from exc


def fill_bytes(arr: np.ndarray) -> array.array:
    """An ``array('B')`` holding ``arr``'s bytes: the fastest way to set a ``uint8[]`` field (one copy,
    no per-element check; see benchmarks/bench_node.py)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(arr).data)
    return out


def array_to_image(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image message (no row padding) from an H×W×C / H×W uint8 array in ``encoding``."""
    channels = _channels(encoding)
    if arr.dtype != np.uint8:
        raise ValueError(f"image array must be uint8, got {arr.dtype}")
    shape_ok = (arr.ndim == 3 and arr.shape[2] == channels) or (arr.ndim == 2 and channels == 1)
    if not shape_ok:
        raise ValueError(f"{encoding} needs an H×W×{channels} array, got shape {arr.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * channels
    msg.data = fill_bytes(arr)
    return msg


def compressed_to_bytes(msg: CompressedImage) -> np.ndarray:
    """The compressed payload as a uint8 view (decoded later by the preprocessor); ValueError if empty."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ValueError("empty compressed image")
    return data


def array_to_compressed(arr_bgr: np.ndarray, header: Header | None = None, quality: int = 90) -> CompressedImage:
    """JPEG CompressedImage from an H×W×3 BGR uint8 array."""
    import cv2

    ok, buf = cv2.imencode(".jpg", arr_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot JPEG-encode an array of shape {arr_bgr.shape}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = "jpeg"
    msg.data = fill_bytes(buf)
    return msg
