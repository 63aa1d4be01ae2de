"""Helpers for the offline tests: CIFAR-10 data in the forms the tools read, built from a few shipped JPEGs."""

from __future__ import annotations

import shutil
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
