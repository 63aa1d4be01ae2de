"""CIFAR-10 specifics: its python archive (as torchvision downloads it) and the test set shipped with the package.

The 10 000 test images ship as ``data/cifar10-test.tar.gz`` in the package's share directory, so the demo, the
camera node's ``cifar10`` source and live accuracy work everywhere. Every other form of CIFAR-10, and any other
dataset, is read by :mod:`dynofa_ros.datasets.image_dataset`.
"""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dynofa_ros.package_files import package_file

SHIPPED_TEST_SET = ("data", "cifar10-test.tar.gz")  # in the package's share directory
PYTHON_ARCHIVE_DIR = "cifar-10-batches-py"
PYTHON_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SIZE = 32
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

Resize = Callable[[np.ndarray, str], np.ndarray]


def shipped_test_set() -> Path:
    """The package's 10 000 CIFAR-10 test JPEGs (``data/cifar10-test.tar.gz`` in the share directory)."""
    return package_file(*SHIPPED_TEST_SET)


def python_batches_dir(root: Path) -> Path | None:
    """The ``cifar-10-batches-py`` folder at or under ``root``, or None."""
    batches = root / PYTHON_ARCHIVE_DIR if (root / PYTHON_ARCHIVE_DIR).is_dir() else root
    return batches if (batches / "batches.meta").is_file() else None


def is_python_archive(path: Path) -> bool:
    """Whether the tarball's first file lies in ``cifar-10-batches-py/``."""
    with tarfile.open(path, "r:*") as tar:
        first = next((m for m in tar if m.isfile()), None)
    return first is not None and Path(first.name).parent.name == PYTHON_ARCHIVE_DIR


def _unpickle(data: bytes, name: str) -> dict:
    try:
        return pickle.loads(data, encoding="bytes")  # noqa: S301 - the CIFAR-10 format is pickled batches
    except Exception as exc:
        raise ValueError(f"{name}: not a CIFAR-10 python batch ({exc})") from exc


def _python_batches(read: dict[str, bytes], where: str, splits: tuple[str, ...], resize: Resize):
    """``read``: member base name -> bytes of the ``cifar-10-batches-py`` files."""
    meta = _unpickle(read["batches.meta"], f"{where}/batches.meta")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])
    out = {}
    for split in splits:
        xs, ys = [], []
        for name in PYTHON_BATCHES[split]:
            if name not in read:
                raise ValueError(f"{where} lacks {PYTHON_ARCHIVE_DIR}/{name}")
            batch = _unpickle(read[name], f"{where}/{name}")
            xs.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1))
            ys.append(np.asarray(batch[b"labels"], np.int64))
        x = np.concatenate(xs)
        out[split] = (np.ascontiguousarray(np.stack([resize(img, f"{where}/{split}") for img in x])),
                      np.concatenate(ys))
    return out, classes


def read_python_archive(path: Path, splits: tuple[str, ...], resize: Resize):
    """``({split: (x, y)}, class names)`` of ``cifar-10-python.tar.gz``."""
    wanted = {"batches.meta", *(n for s in splits for n in PYTHON_BATCHES[s])}
    read = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and name in wanted:
                read[name] = tar.extractfile(member).read()
    if "batches.meta" not in read:
        raise ValueError(f"{path} lacks {PYTHON_ARCHIVE_DIR}/batches.meta")
    return _python_batches(read, str(path), splits, resize)


def read_python_folder(batches: Path, splits: tuple[str, ...], resize: Resize):
    """``({split: (x, y)}, class names)`` of an extracted ``cifar-10-batches-py`` folder."""
    read = {p.name: p.read_bytes() for p in batches.iterdir() if p.is_file()}
    return _python_batches(read, str(batches), splits, resize)

