"""Camera frame sources (no ROS): image folders with labels, resizing, clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dynofa_ros.nodes.sources import open_source, resize


def test_folder_source_yields_rgb_frames_with_labels(tmp_path):
    bgr = np.zeros((8, 6, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "0.png"), bgr)
    frames = list(open_source("folder", str(tmp_path), loop=False))
    assert [label for _, label in frames] == [0, 1]
    rgb = frames[0][0]
    assert rgb.shape == (8, 6, 3) and rgb[0, 0].tolist() == [255, 0, 0]


def test_folder_source_loops(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    it = open_source("folder", str(tmp_path), loop=True)
    assert [next(it)[1] for _ in range(3)] == [-1, -1, -1]


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        open_source("folder", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="no images"):
        open_source("folder", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        open_source("cifar10", str(tmp_path / "cifar-10-python.tar.gz"))
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="corrupt or unreadable"):
        open_source("cifar10", str(tmp_path / "broken.tar.gz"))
    with pytest.raises(FileNotFoundError, match="video file not found"):
        open_source("video", str(tmp_path / "x.mp4"))
    with pytest.raises(ValueError, match="unknown source"):
        open_source("lidar")


def test_resize_keeps_zero_sides():
    img = np.zeros((32, 32, 3), np.uint8)
    assert resize(img, 640, 480).shape == (480, 640, 3)
    assert resize(img, 0, 0) is img
    assert resize(img, 64, 0).shape == (32, 64, 3)


def test_corrupt_images_are_skipped_with_on_error(tmp_path):
    (tmp_path / "a").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "0.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode"):
        list(open_source("folder", str(tmp_path), loop=False))
    errors: list[str] = []
    it = open_source("folder", str(tmp_path), loop=True, on_error=errors.append)
    assert [next(it)[1] for _ in range(3)] == [0, 0, 0]
    assert len(errors) == 2 and "1.png" in errors[0]


def test_a_folder_of_corrupt_images_ends_instead_of_spinning(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    errors: list[str] = []
    assert list(open_source("folder", str(tmp_path), loop=True, on_error=errors.append)) == []
    assert "no readable image" in errors[-1]


def test_cifar10_source_serves_the_shipped_test_images():
    frames = open_source("cifar10", "", seed=1, loop=False)
    firsts = [next(frames) for _ in range(50)]
    assert all(rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8 for rgb, _ in firsts)
    assert {label for _, label in firsts} <= set(range(10)) and len({label for _, label in firsts}) > 5
    assert sum(1 for _ in frames) == 10000 - 50
