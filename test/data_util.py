"""Helpers for the offline tests: CIFAR-10 data in the forms the tools read, built from a few shipped JPEGs."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from dynofa_ros.datasets.images import list_image_folder


def cifar_split_folder(images: Path, root: Path, test_every: int = 1) -> Path:
    """CIFAR-10 data as an ImageFolder with ``train/`` (every image of the tree ``images``) and ``test/`` (every
    ``test_every``-th of them in sorted order), the JPEG files copied as they are; returns ``root``."""
    _, files = list_image_folder(images)
    for split, picked in (("train", files), ("test", files[::test_every])):
        for path, _ in picked:
            target = root / split / path.relative_to(images)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


def cifar_jpeg_tarball(images: Path, path: Path, train_per_class: int = 20) -> Path:
    """Our JPEG tarball layout ``cifar10/{train,test}/<class>/<image>`` from the class folders of ``images``: the
    first ``train_per_class`` images of each class (sorted) as train, the rest as test; returns ``path``."""
    with tarfile.open(path, "w:gz") as tar:
        for class_dir in sorted(images.iterdir()):
            for i, jpg in enumerate(sorted(class_dir.iterdir())):
                split = "train" if i < train_per_class else "test"
                tar.add(jpg, arcname=f"cifar10/{split}/{class_dir.name}/{jpg.name}")
    return path
