"""A small synthetic ImageFolder whose classes can be learned: for trying the pipeline without data, and its tests.

Class ``k`` is a disc of one hue on a textured background, at a random place and size; images come in mixed
sizes and aspect ratios around ``size`` px, as photos do, so the loader's resizing is exercised too.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HUES = (0, 60, 120, 30, 90, 150, 15, 45, 75, 105)  # OpenCV hue (0-179) of each class's disc


def synthetic_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    """One BGR image of class ``label``, about ``size`` px on its short side."""
    h = int(size * rng.uniform(1.0, 1.25))
    w = int(size * rng.uniform(1.0, 1.4))
    img = rng.integers(40, 216, (h, w, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), sigmaX=max(1.0, size / 40))
    hsv = np.uint8([[[HUES[label % len(HUES)], 200, 230]]])
    colour = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
    radius = int(min(h, w) * rng.uniform(0.2, 0.35))
    centre = (int(rng.integers(radius, w - radius)), int(rng.integers(radius, h - radius)))
    cv2.circle(img, centre, radius, colour, thickness=-1)
    return img


def write_synthetic_folder(root: Path | str, classes: int = 3, train_per_class: int = 40, test_per_class: int = 10,
                           size: int = 224, seed: int = 0, test_folder: str = "val") -> Path:
    """Write ``root/{train,<test_folder>}/class_<k>/<i>.jpg`` and return ``root``."""
    if not 1 <= classes <= len(HUES):
        raise ValueError(f"classes must be in 1..{len(HUES)}, got {classes}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), (test_folder, test_per_class)):
        for k in range(classes):
            folder = root / split / f"class_{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                cv2.imwrite(str(folder / f"{i:04d}.jpg"), synthetic_image(rng, k, size),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root
