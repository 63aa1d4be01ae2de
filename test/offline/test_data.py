"""Data cache, stratified split, ImageFolder loading and input conversion."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dynofa_ros.offline.data import (
    CACHE_NAME,
    list_image_folder,
    load_cifar10,
    load_image_folder,
    stratified_split,
    subset,
    to_input,
)


@pytest.fixture
def tiny_tarball(cifar_tiny_dir: Path, tmp_path: Path) -> Path:
    """A CIFAR-10-layout tarball: 20 train and 10 test images per class."""
    path = tmp_path / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for class_dir in sorted(cifar_tiny_dir.iterdir()):
            for i, jpg in enumerate(sorted(class_dir.iterdir())):
                split = "train" if i < 20 else "test"
                tar.add(jpg, arcname=f"cifar10/{split}/{class_dir.name}/{jpg.name}")
    return path


def test_cache_is_built_once_and_reused(tiny_tarball: Path, cifar_tiny_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_cifar10(tiny_tarball, cache, progress=False)
    assert first.train_x.shape == (200, 32, 32, 3) and first.train_x.dtype == np.uint8
    assert first.test_x.shape == (100, 32, 32, 3)
    assert first.class_names[0] == "airplane" and len(first.class_names) == 10
    assert np.bincount(first.train_y).tolist() == [20] * 10
    mtime = (cache / CACHE_NAME).stat().st_mtime_ns
    tiny_tarball.unlink()  # the second load must not need the tarball
    second = load_cifar10(tiny_tarball, cache, progress=False)
    assert (cache / CACHE_NAME).stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.train_x, second.train_x)
    np.testing.assert_array_equal(first.test_y, second.test_y)
    assert first.class_names == second.class_names
    # RGB order: the first airplane image equals OpenCV's BGR decode, channel-reversed
    bgr = cv2.imread(str(sorted((cifar_tiny_dir / "airplane").iterdir())[0]))
    np.testing.assert_array_equal(first.train_x[0], bgr[:, :, ::-1])


def test_missing_and_corrupt_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_cifar10(tmp_path / "nope.tar.gz", tmp_path / "c1")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_cifar10(bad, tmp_path / "c2")
    (tmp_path / "c3").mkdir()
    (tmp_path / "c3" / CACHE_NAME).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt data cache"):
        load_cifar10(bad, tmp_path / "c3")


def test_stratified_split_is_disjoint_balanced_and_seeded() -> None:
    labels = np.repeat(np.arange(10), 500)
    split = stratified_split(labels, val_size=500, seed=3)
    assert len(split.val) == 500 and len(split.train) == 4500
    assert not set(split.val) & set(split.train)
    assert sorted(np.concatenate([split.train, split.val]).tolist()) == list(range(5000))
    assert np.bincount(labels[split.val]).tolist() == [50] * 10
    np.testing.assert_array_equal(split.val, stratified_split(labels, 500, seed=3).val)
    assert not np.array_equal(split.val, stratified_split(labels, 500, seed=4).val)
    uneven = np.array([0] * 7 + [1] * 3)
    assert len(stratified_split(uneven, val_size=5).val) == 5
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(labels, val_size=0)


def test_subset_is_random_not_a_prefix() -> None:
    labels = np.repeat(np.arange(10), 100)
    picked = subset(np.arange(1000), 100, seed=0)
    assert len(picked) == len(set(picked)) == 100
    assert len(np.unique(labels[picked])) > 5
    assert len(subset(np.arange(10), None)) == 10


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


def test_to_input_normalises_and_resizes() -> None:
    mean, std = (0.5, 0.25, 0.75), (0.5, 0.25, 0.25)
    images = torch.tensor([round(m * 255) for m in mean], dtype=torch.uint8).expand(2, 8, 8, 3).contiguous()
    x = to_input(images, 16, mean, std)
    assert x.shape == (2, 3, 16, 16) and x.is_contiguous()
    assert x.abs().max() < 0.02
    white = to_input(torch.full((1, 4, 4, 3), 255, dtype=torch.uint8), 4, mean, std)
    assert torch.allclose(white[0, :, 0, 0], torch.tensor([1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="uint8"):
        to_input(torch.zeros(1, 4, 4, 3), 4, mean, std)
