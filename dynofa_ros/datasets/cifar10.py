"""CIFAR-10 as decoded uint8 arrays, from whichever form the user has, and the shipped test set.

Forms read (``data`` arguments and ``--data`` options take any of them):

- the JPEG tarball: ``<top>/{train,test}/<class>/<image>`` in a ``.tar.gz`` (the shipped test set is one);
- the CIFAR-10 python archive as torchvision downloads it (``cifar-10-python.tar.gz``), or its extracted
  ``cifar-10-batches-py`` folder;
- an ImageFolder tree with ``train/`` and ``test/`` sub-folders of ``<class>/<image>`` files.

Training data is always an input the user names (``--data`` or ``$DYNOFA_DATA``): nothing is downloaded and
there is no default outside the package. The 10 000 test images ship with the package
(``data/cifar10-test.tar.gz`` in its share directory), so the demo, the camera node's ``cifar10`` source and
live accuracy work everywhere. Decoded archives are cached as ``.npz`` in the user cache directory
(``$DYNOFA_CACHE``, else ``$XDG_CACHE_HOME/dynofa_ros``, else ``~/.cache/dynofa_ros``), keyed by the archive's
path, size and modification time.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynofa_ros.datasets.images import decode_image, is_image_name, list_image_folder
from dynofa_ros.package_files import package_file

SPLITS = ("train", "test")
SHIPPED_TEST_SET = ("data", "cifar10-test.tar.gz")  # in the package's share directory
DATA_ENV = "DYNOFA_DATA"
CACHE_ENV = "DYNOFA_CACHE"
PYTHON_ARCHIVE_DIR = "cifar-10-batches-py"
PYTHON_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SIZE = 32
FORMS = ("a CIFAR-10 JPEG tarball (<top>/{train,test}/<class>/*.jpg), the python archive "
         "cifar-10-python.tar.gz (or its cifar-10-batches-py folder), or an ImageFolder with train/ and test/")


@dataclass
class LabelledImages:
    """One split: ``x`` N x 32 x 32 x 3 uint8 RGB, ``y`` int64 labels indexing ``class_names``."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


@dataclass
class Cifar10Arrays:
    """Decoded CIFAR-10: ``*_x`` are N x 32 x 32 x 3 uint8 RGB, ``*_y`` int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]


def default_cache_dir() -> Path:
    """``$DYNOFA_CACHE``, else ``$XDG_CACHE_HOME/dynofa_ros``, else ``~/.cache/dynofa_ros``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "dynofa_ros"


def training_data(data: Path | str | None) -> Path:
    """``data``, else ``$DYNOFA_DATA``; FileNotFoundError saying how to name it when neither is given or the
    path does not exist."""
    if data is None and os.environ.get(DATA_ENV):
        data = Path(os.environ[DATA_ENV]).expanduser()
    if data is None:
        raise FileNotFoundError(f"no training data given: pass --data or set ${DATA_ENV} to {FORMS} "
                                "(nothing is downloaded)")
    data = Path(data)
    if not data.exists():
        raise FileNotFoundError(f"CIFAR-10 data not found: {data}")
    return data


def shipped_test_set() -> Path:
    """The package's 10 000 CIFAR-10 test JPEGs (``data/cifar10-test.tar.gz`` in the share directory)."""
    return package_file(*SHIPPED_TEST_SET)


# -- readers, one per form: each returns ({split: (x, y)}, class names) --------------------------------------

def _stack(items: list[tuple[str, np.ndarray]], index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([img for _, img in items]), np.array([index[c] for c, _ in items], dtype=np.int64)


def _checked(img: np.ndarray, name: str) -> np.ndarray:
    if img.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{name}: expected {SIZE}x{SIZE}, got {img.shape[1]}x{img.shape[0]}")
    return img


def _read_jpeg_tarball(tar: tarfile.TarFile, path: Path, splits: tuple[str, ...], progress: bool):
    per_split: dict[str, list[tuple[str, np.ndarray]]] = {s: [] for s in splits}
    with tqdm(desc=f"decode {path.name}", unit="img", disable=not progress) as bar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or parts[1] not in per_split or not is_image_name(parts[3]):
                continue
            fileobj = tar.extractfile(member)
            if fileobj is not None:
                per_split[parts[1]].append((parts[2], _checked(decode_image(fileobj.read(), member.name),
                                                               member.name)))
                bar.update()
    missing = [s for s, items in per_split.items() if not items]
    if missing:
        raise ValueError(f"{path} has no {'/'.join(missing)} images (<top>/<split>/<class>/<image>)")
    classes = tuple(sorted({c for items in per_split.values() for c, _ in items}))
    index = {c: i for i, c in enumerate(classes)}
    return {s: _stack(items, index) for s, items in per_split.items()}, classes


def _unpickle(data: bytes, name: str) -> dict:
    try:
        return pickle.loads(data, encoding="bytes")  # noqa: S301 - the CIFAR-10 format is pickled batches
    except Exception as exc:
        raise ValueError(f"{name}: not a CIFAR-10 python batch ({exc})") from exc


def _python_batches(read: dict[str, bytes], where: str, splits: tuple[str, ...]):
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
        out[split] = (np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))
    return out, classes


def _read_python_tarball(tar: tarfile.TarFile, path: Path, splits: tuple[str, ...]):
    wanted = {"batches.meta", *(n for s in splits for n in PYTHON_BATCHES[s])}
    read = {}
    for member in tar:
        name = Path(member.name).name
        if member.isfile() and name in wanted:
            read[name] = tar.extractfile(member).read()
    if "batches.meta" not in read:
        raise ValueError(f"{path} lacks {PYTHON_ARCHIVE_DIR}/batches.meta")
    return _python_batches(read, str(path), splits)


def _read_folder(root: Path, splits: tuple[str, ...], progress: bool):
    batches = root / PYTHON_ARCHIVE_DIR if (root / PYTHON_ARCHIVE_DIR).is_dir() else root
    if (batches / "batches.meta").is_file():
        read = {p.name: p.read_bytes() for p in batches.iterdir() if p.is_file()}
        return _python_batches(read, str(batches), splits)
    missing = [s for s in splits if not (root / s).is_dir()]
    if missing:
        raise ValueError(f"{root} is not CIFAR-10 data: no {'/'.join(missing)} folder; give {FORMS}")
    listed = {s: list_image_folder(root / s) for s in splits}
    classes = listed[splits[0]][0]
    out = {}
    for split, (split_classes, files) in listed.items():
        if not set(split_classes) <= set(classes):
            raise ValueError(f"{root}: {split} classes {sorted(set(split_classes) - set(classes))} missing from "
                             f"{splits[0]}")
        remap = np.array([classes.index(c) for c in split_classes], np.int64)
        kept = [(p, lab) for p, lab in files if lab >= 0]
        x = np.stack([_checked(decode_image(p.read_bytes(), str(p)), str(p))
                      for p, _ in tqdm(kept, desc=f"load {split}", unit="img", disable=not progress)])
        out[split] = (x, remap[[lab for _, lab in kept]])
    return out, classes


def read_cifar10(data: Path | str, splits: tuple[str, ...] = SPLITS, progress: bool = False):
    """``({split: (x, y)}, class names)`` from any form in the module docstring; ValueError for unreadable or
    malformed data, FileNotFoundError when ``data`` does not exist."""
    path = Path(data)
    if path.is_dir():
        return _read_folder(path, splits, progress)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 data not found: {path}")
    try:
        with tarfile.open(path, "r:*") as tar:
            first = next((m for m in tar if m.isfile()), None)
        python_form = first is not None and Path(first.name).parent.name == PYTHON_ARCHIVE_DIR
        with tarfile.open(path, "r:*") as tar:  # a fresh stream: compressed members are read in order
            if python_form:
                return _read_python_tarball(tar, path, splits)
            return _read_jpeg_tarball(tar, path, splits, progress)
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"corrupt or unreadable CIFAR-10 archive {path}: {exc}") from exc


def load_test_set(data: Path | str | None = None, progress: bool = False) -> LabelledImages:
    """The CIFAR-10 test split of ``data`` (any form), or of the shipped test set when ``data`` is None."""
    splits, classes = read_cifar10(shipped_test_set() if data is None else data, ("test",), progress)
    return LabelledImages(*splits["test"], classes)


def _cache_path(source: Path, cache_dir: Path) -> Path:
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir / f"cifar10-{key}.npz"


def load_cifar10(data: Path | str | None = None, cache_dir: Path | str | None = None,
                 progress: bool = True) -> Cifar10Arrays:
    """Training and test splits of ``data`` (else ``$DYNOFA_DATA``), any form; archives are decoded once and
    cached (see the module docstring)."""
    source = training_data(data)
    cache = None
    if source.is_file():
        cache = _cache_path(source, Path(cache_dir) if cache_dir is not None else default_cache_dir())
        if cache.exists():
            try:
                with np.load(cache) as z:
                    return Cifar10Arrays(z["train_x"], z["train_y"], z["test_x"], z["test_y"],
                                         tuple(str(c) for c in z["class_names"]))
            except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                raise ValueError(f"corrupt data cache {cache} ({exc}); delete it to rebuild") from exc
    splits, classes = read_cifar10(source, SPLITS, progress)
    data = Cifar10Arrays(*splits["train"], *splits["test"], classes)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, train_x=data.train_x, train_y=data.train_y, test_x=data.test_x, test_y=data.test_y,
                 class_names=np.array(data.class_names))
        tmp.replace(cache)
    return data
