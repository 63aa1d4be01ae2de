"""Frame sources for the camera node (no ROS): video file, image folder, OpenCV camera, CIFAR-10 test set.

Every source yields ``(rgb, label)``: an H×W×3 uint8 RGB frame and its true class (-1 when unknown).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dynofa_ros.offline.data import IMG_EXTENSIONS, decode_image, load_cifar10

SOURCE_KINDS = ("cifar10", "folder", "video", "camera")


def _video_frames(capture: cv2.VideoCapture, what: str, loop: bool) -> Iterator[tuple[np.ndarray, int]]:
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {what}")
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                if loop and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, bgr = capture.read()
                if not ok:
                    return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), -1
    finally:
        capture.release()


def _folder_frames(root: Path, loop: bool) -> Iterator[tuple[np.ndarray, int]]:
    """Images under ``root`` (sorted); ImageFolder sub-directories give the label index."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) under {root}")
    while True:
        for path in files:
            rel = path.relative_to(root).parts
            label = classes.index(rel[0]) if len(rel) > 1 and rel[0] in classes else -1
            yield decode_image(path.read_bytes(), str(path)), label
        if not loop:
            return


def _cifar10_frames(seed: int, loop: bool) -> Iterator[tuple[np.ndarray, int]]:
    data = load_cifar10(progress=False)
    rng = np.random.default_rng(seed)
    while True:
        for i in rng.permutation(len(data.test_y)):
            yield data.test_x[i], int(data.test_y[i])
        if not loop:
            return


def open_source(kind: str, path: str = "", camera_index: int = 0, loop: bool = True,
                seed: int = 0) -> Iterator[tuple[np.ndarray, int]]:
    """An iterator of ``(rgb, label)`` frames; FileNotFoundError/ValueError for a bad source."""
    if kind == "cifar10":
        return _cifar10_frames(seed, loop)
    if kind == "folder":
        if not Path(path).is_dir():
            raise FileNotFoundError(f"image folder not found: {path!r}")
        return _folder_frames(Path(path), loop)
    if kind == "video":
        if not Path(path).is_file():
            raise FileNotFoundError(f"video file not found: {path!r}")
        return _video_frames(cv2.VideoCapture(path), f"video {path}", loop)
    if kind == "camera":
        return _video_frames(cv2.VideoCapture(camera_index), f"camera {camera_index}", loop=False)
    raise ValueError(f"unknown source {kind!r}; choose one of {SOURCE_KINDS}")


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` resized to width×height (0 keeps that side's size)."""
    w, h = width or rgb.shape[1], height or rgb.shape[0]
    if (h, w) == rgb.shape[:2]:
        return rgb
    interp = cv2.INTER_AREA if w < rgb.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)
