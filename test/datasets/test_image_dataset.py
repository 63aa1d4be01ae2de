"""Datasets in every form the tools read (CIFAR-10 forms, ImageFolders at any size), the decoded-data cache, and
the shipped test images."""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from dynofa_ros.datasets import cifar10
from dynofa_ros.datasets.image_dataset import default_cache_dir, fit_square, load_dataset, load_split, read_dataset
from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.datasets.synthetic import write_synthetic_folder

from ..data_util import cifar_jpeg_tarball, cifar_split_folder

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture
def tiny_tarball(cifar_tiny_dir: Path, tmp_path: Path) -> Path:
    """Our JPEG tarball layout: 20 train and 10 test images per class."""
    return cifar_jpeg_tarball(cifar_tiny_dir, tmp_path / "tiny.tar.gz")


def python_archive(images: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """``cifar-10-python.tar.gz`` as torchvision downloads it, holding ``images`` as every batch."""
    planar = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    members = {"batches.meta": {b"label_names": [c.encode() for c in CLASSES]},
               **{f"data_batch_{i}": {b"data": planar, b"labels": labels.tolist()} for i in range(1, 6)},
               "test_batch": {b"data": planar[:7], b"labels": labels[:7].tolist()}}
    folder = path.parent / "cifar-10-batches-py"
    folder.mkdir()
    for name, content in members.items():
        (folder / name).write_bytes(pickle.dumps(content))
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


def test_the_shipped_test_set_is_cifar10_test(cifar_tiny_dir: Path) -> None:
    test = load_split(cifar10.shipped_test_set())
    assert test.x.shape == (10000, 32, 32, 3) and test.x.dtype == np.uint8
    assert test.class_names == CLASSES
    assert np.bincount(test.y).tolist() == [1000] * 10
    # RGB order, and the same pixels as the JPEG files: the first airplane is OpenCV's BGR decode reversed
    bgr = cv2.imread(str(sorted((cifar_tiny_dir / "airplane").iterdir())[0]))
    np.testing.assert_array_equal(test.x[0], bgr[:, :, ::-1])


def test_jpeg_tarball_is_decoded_once_and_cached(tiny_tarball: Path, cifar_tiny_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_dataset(tiny_tarball, cache, progress=False)
    assert first.train_x.shape == (200, 32, 32, 3) and first.test_x.shape == (100, 32, 32, 3)
    assert first.class_names == CLASSES and np.bincount(first.train_y).tolist() == [20] * 10
    [cached] = cache.iterdir()
    mtime = cached.stat().st_mtime_ns
    second = load_dataset(tiny_tarball, cache, progress=False)
    assert [cached] == list(cache.iterdir()) and cached.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first.train_x, second.train_x)
    np.testing.assert_array_equal(first.test_y, second.test_y)
    os.utime(tiny_tarball, ns=(mtime + 10**9, mtime + 10**9))  # a changed archive is decoded again
    load_dataset(tiny_tarball, cache, progress=False)
    assert len(list(cache.iterdir())) == 2


def test_python_archive_and_its_folder(cifar_tiny_dir: Path, tmp_path: Path) -> None:
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    archive = python_archive(images, labels, tmp_path / "cifar-10-python.tar.gz")
    for source in (archive, tmp_path, tmp_path / "cifar-10-batches-py"):
        data = load_dataset(source, tmp_path / "cache", progress=False)
        assert data.class_names == CLASSES
        np.testing.assert_array_equal(data.train_x, np.concatenate([images] * 5))
        np.testing.assert_array_equal(data.train_y, np.concatenate([labels] * 5))
        np.testing.assert_array_equal(data.test_x, images[:7])
    np.testing.assert_array_equal(load_split(archive).y, labels[:7])


def test_image_folder_with_train_and_test(cifar_tiny_dir: Path, tmp_path: Path) -> None:
    root = cifar_split_folder(cifar_tiny_dir, tmp_path / "data", test_every=3)
    images, labels, classes = load_image_folder(cifar_tiny_dir)
    data = load_dataset(root, progress=False)
    assert data.class_names == classes
    np.testing.assert_array_equal(data.train_x, images)
    np.testing.assert_array_equal(data.test_x, images[::3])
    np.testing.assert_array_equal(data.test_y, labels[::3])
    shutil.rmtree(root / "train")
    np.testing.assert_array_equal(load_split(root).x, images[::3])
    with pytest.raises(ValueError, match="no train folder"):
        read_dataset(root)


def test_training_data_comes_from_the_argument_or_the_environment(tiny_tarball: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNOFA_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="--data") as err:
        load_dataset(None, tmp_path / "c0")
    assert "DYNOFA_DATA" in str(err.value)
    monkeypatch.setenv("DYNOFA_DATA", str(tiny_tarball))
    assert len(load_dataset(None, tmp_path / "c0", progress=False).train_y) == 200


def test_missing_and_corrupt_inputs_raise(tiny_tarball: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.tar.gz"):
        load_dataset(tmp_path / "nope.tar.gz", tmp_path / "c1")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_dataset(bad, tmp_path / "c2")
    with pytest.raises(ValueError, match="no train images"):
        load_dataset(cifar10.shipped_test_set(), tmp_path / "c2")  # test images only
    load_dataset(tiny_tarball, tmp_path / "c3", progress=False)
    [cached] = (tmp_path / "c3").iterdir()
    (cached / "train_x.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt data cache"):
        load_dataset(tiny_tarball, tmp_path / "c3")


def test_cache_goes_to_the_user_cache_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNOFA_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "dynofa_ros"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "dynofa_ros"
    monkeypatch.setenv("DYNOFA_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_image_folder_at_any_size_with_a_val_folder(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "photos", classes=3, train_per_class=4, test_per_class=2, size=96)
    with pytest.raises(ValueError, match="--image-size"):  # mixed sizes and no size to store them at
        read_dataset(root)
    data = load_dataset(root, tmp_path / "cache", fallback_size=64, progress=False)
    assert data.class_names == ("class_0", "class_1", "class_2") and data.name == "photos"
    assert data.train_x.shape == (12, 64, 64, 3) and data.test_x.shape == (6, 64, 64, 3)  # val/ is the test split
    assert isinstance(data.train_x, np.memmap) and data.image_size == 64
    np.testing.assert_array_equal(data.test_y, [0, 0, 1, 1, 2, 2])
    sized = load_dataset(root, tmp_path / "cache", size=48, progress=False)  # --image-size wins
    assert sized.train_x.shape[1:] == (48, 48, 3) and len(list((tmp_path / "cache").iterdir())) == 2
    # the stored pixels are the centre square of each photo, resized
    first = cv2.imread(str(root / "train" / "class_0" / "0000.jpg"))[:, :, ::-1]
    np.testing.assert_array_equal(data.train_x[0], fit_square(first, 64))
    h, w = first.shape[:2]
    side = min(h, w)
    centre = first[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
    assert np.abs(fit_square(centre, 64).astype(int) - data.train_x[0]).mean() < 3


def test_class_folders_only_hold_out_a_stratified_test_split(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "x", classes=2, train_per_class=20, test_per_class=0, size=40)
    shutil.rmtree(root / "val")
    for folder in (root / "train").iterdir():
        folder.rename(root / folder.name)
    (root / "train").rmdir()
    splits, classes = read_dataset(root, size=32)
    assert classes == ("class_0", "class_1")
    assert np.bincount(splits["test"][1]).tolist() == [2, 2] and np.bincount(splits["train"][1]).tolist() == [18, 18]
    again, _ = read_dataset(root, size=32)
    np.testing.assert_array_equal(again["test"][0], splits["test"][0])  # the same hold-out every time


def test_an_edited_folder_is_decoded_again(tmp_path: Path) -> None:
    root = write_synthetic_folder(tmp_path / "x", classes=2, train_per_class=3, test_per_class=1, size=40)
    load_dataset(root, tmp_path / "cache", size=32, progress=False)
    extra = root / "train" / "class_1" / "extra.jpg"
    shutil.copy(root / "train" / "class_0" / "0000.jpg", extra)
    data = load_dataset(root, tmp_path / "cache", size=32, progress=False)
    assert len(data.train_y) == 7 and len(list((tmp_path / "cache").iterdir())) == 2
