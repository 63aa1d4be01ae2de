"""Image decoding and ImageFolder trees."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dynofa_ros.datasets.images import list_image_folder, load_image_folder


def test_load_image_folder_classes_and_resize(cifar_tiny_dir: Path, tmp_path: Path) -> None:
    images, labels, classes = load_image_folder(cifar_tiny_dir, size=48)
    assert classes == tuple(sorted(p.name for p in cifar_tiny_dir.iterdir()))
    assert images.shape == (300, 48, 48, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [30] * 10
    with pytest.raises(FileNotFoundError):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no images"):
        load_image_folder(tmp_path)
    cv2.imwrite(str(tmp_path / "loose.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match="no class sub-directories with images"):
        load_image_folder(tmp_path)  # an image outside any class folder has no label
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "broken.jpg").write_bytes(b"xx")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image_folder(tmp_path)


def test_list_image_folder_labels_by_class_folder(tmp_path: Path) -> None:
    for name in ("b/x/2.png", "a/1.jpg", "0.png", "b/3.PNG", "a/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "a" / "dir.jpg").mkdir()  # a folder with an image-like name is not an image
    classes, files = list_image_folder(tmp_path)
    assert classes == ("a", "b")
    assert [(p.relative_to(tmp_path).as_posix(), label) for p, label in files] == [
        ("0.png", -1), ("a/1.jpg", 0), ("b/3.PNG", 1), ("b/x/2.png", 1)]
