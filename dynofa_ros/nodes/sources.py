"""Frame sources for the camera node (no ROS): video file, image folder, OpenCV camera, CIFAR-10 test images.

Every source yields ``(rgb, label)``: an H×W×3 uint8 RGB frame and its true class (-1 when unknown).
With an ``on_error`` callback, an unreadable image or a failed video read is reported to it and skipped
instead of ending the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from dynofa_ros.datasets.cifar10 import shipped_test_set
from dynofa_ros.datasets.image_dataset import LabelledImages, load_split
from dynofa_ros.datasets.images import decode_image, list_image_folder

SOURCE_KINDS = ("cifar10", "folder", "video", "camera")
DATASET_FRAME_SIZE = 224  # a dataset whose images differ in size is played at this square size
MAX_VIDEO_ERRORS = 30  # consecutive failed reads that end a video/camera source
OnError = Callable[[str], None]


def _opened(capture: cv2.VideoCapture, what: str) -> cv2.VideoCapture:
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open {what}")
    return capture


def _video_frames(capture: cv2.VideoCapture, what: str, loop: bool, on_error: OnError | None
                  ) -> Iterator[tuple[np.ndarray, int]]:
    errors = 0
    try:
        while True:
            try:
                ok, bgr = capture.read()
                if not ok and loop and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, bgr = capture.read()
                if not ok:
                    return
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            except cv2.error as exc:
                if on_error is None:
                    raise
                errors += 1
                on_error(f"{what}: frame read failed, skipped: {exc}")
                if errors >= MAX_VIDEO_ERRORS:
                    on_error(f"{what}: {errors} reads failed in a row; source ended")
                    return
                continue
            errors = 0
            yield rgb, -1
    finally:
        capture.release()


def _folder_frames(root: Path, files: list[tuple[Path, int]], loop: bool, on_error: OnError | None
                   ) -> Iterator[tuple[np.ndarray, int]]:
    """``files`` of the folder ``root`` in turn, decoded."""
    while True:
        good = 0
        for path, label in files:
            try:
                rgb = decode_image(path.read_bytes(), str(path))
            except (OSError, ValueError) as exc:
                if on_error is None:
                    raise
                on_error(f"skipped image: {exc}")
                continue
            good += 1
            yield rgb, label
        if not good and on_error is not None:  # every image failed: looping would spin forever
            on_error(f"no readable image under {root}; source ended")
            return
        if not loop:
            return


def _cifar10_frames(data: LabelledImages, seed: int, loop: bool) -> Iterator[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    while True:
        for i in rng.permutation(len(data.y)):
            yield data.x[i], int(data.y[i])
        if not loop:
            return


def open_source(kind: str, path: str = "", camera_index: int = 0, loop: bool = True,
                seed: int = 0, on_error: OnError | None = None) -> Iterator[tuple[np.ndarray, int]]:
    """An iterator of ``(rgb, label)`` frames; FileNotFoundError/ValueError for a bad source, raised here.

    ``path``: the image folder or video file; for ``cifar10`` a dataset in any form that
    :mod:`dynofa_ros.datasets.image_dataset` reads, whose test split is played ('' = the shipped CIFAR-10 test
    images). With ``on_error``, unreadable frames
    are reported to it and skipped (else they raise)."""
    if kind == "cifar10":
        return _cifar10_frames(load_split(path or shipped_test_set(), fallback_size=DATASET_FRAME_SIZE), seed, loop)
    if kind == "folder":
        return _folder_frames(Path(path), list_image_folder(path)[1], loop, on_error)
    if kind == "video":
        if not Path(path).is_file():
            raise FileNotFoundError(f"video file not found: {path!r}")
        return _video_frames(_opened(cv2.VideoCapture(path), f"video {path}"), f"video {path}", loop, on_error)
    if kind == "camera":
        what = f"camera {camera_index}"
        return _video_frames(_opened(cv2.VideoCapture(camera_index), what), what, False, on_error)
    raise ValueError(f"unknown source {kind!r}; choose one of {SOURCE_KINDS}")


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` resized to width×height (0 keeps that side's size)."""
    w, h = width or rgb.shape[1], height or rgb.shape[0]
    if (h, w) == rgb.shape[:2]:
        return rgb
    interp = cv2.INTER_AREA if w < rgb.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(rgb, (w, h), interpolation=interp)
