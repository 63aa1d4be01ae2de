"""Image files and ImageFolder trees (``root/<class>/.../<image>``) as RGB uint8 arrays."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode encoded image bytes to H x W x 3 uint8 RGB; ValueError naming ``name`` if unreadable."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {name!r} (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def is_image_name(name: str) -> bool:
    """Whether a file name has one of :data:`IMG_EXTENSIONS`."""
    return name.lower().endswith(IMG_EXTENSIONS)


def list_image_folder(root: Path | str) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """``(classes, [(image path, label), ...])`` of an ImageFolder tree ``root/<class>/.../<image>``.

    Classes are the sorted sub-directory names (torchvision ImageFolder semantics); images are sorted by path;
    an image directly under ``root`` has label -1. FileNotFoundError when there is no folder or no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    classes = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir()))
    index = {c: i for i, c in enumerate(classes)}
    files = [(path, index[path.relative_to(root).parts[0]] if path.parent != root else -1)
             for path in sorted(root.rglob("*")) if is_image_name(path.name) and path.is_file()]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) under {root}")
    return classes, files


def load_image_folder(root: Path | str, size: int = 32, progress: bool = True
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Load an ImageFolder tree (:func:`list_image_folder`) as (N x size x size x 3 uint8 RGB, labels, classes).

    Images directly under ``root`` (no class) are left out.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    classes, listed = list_image_folder(root)
    files = [(path, label) for path, label in listed if label >= 0]
    if not classes or not files:
        raise FileNotFoundError(f"no class sub-directories with images in {root}")
    images = np.empty((len(files), size, size, 3), np.uint8)
    for i, (path, _) in enumerate(tqdm(files, desc=f"load {Path(root).name}", unit="img", disable=not progress)):
        img = decode_image(path.read_bytes(), str(path))
        if img.shape[:2] != (size, size):
            interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_LINEAR
            img = cv2.resize(img, (size, size), interpolation=interp)
        images[i] = img
    return images, np.array([label for _, label in files], dtype=np.int64), classes
