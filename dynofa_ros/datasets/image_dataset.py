"""Labelled image datasets as decoded uint8 arrays (no torch), from whichever form the user has.

Forms read (``--data`` options and ``$DYNOFA_DATA`` take any of them):

- an ImageFolder tree at any resolution: ``train/`` and ``test/`` (or ``val/``, as ImageNet ships) sub-folders
  of ``<class>/<image>`` files, or only ``<class>/<image>`` folders, of which a seeded, class-stratified
  :data:`HOLDOUT_FRACTION` becomes the test split;
- a tarball of such a tree, ``<top>/{train,test}/<class>/<image>`` (the shipped CIFAR-10 test set is one);
- the CIFAR-10 python archive as torchvision downloads it (``cifar-10-python.tar.gz``), or its extracted
  ``cifar-10-batches-py`` folder.

Every image is stored at one square size: ``size`` when given (short side resized, centre crop), else the
images' own size when they all share it, else ``fallback_size`` (the offline tools pass the supernet's largest
resolution). Class names are the folder names (the CIFAR-10 archive's label names), sorted.

Training data is always an input the user names: nothing is downloaded and there is no default outside the
package. Decoded data is cached as ``.npy`` arrays in the user cache directory (``$DYNOFA_CACHE``, else
``$XDG_CACHE_HOME/dynofa_ros``, else ``~/.cache/dynofa_ros``), keyed by the source's path, size and modification
time and by the storage size, and memory-mapped on load: the offline stages read it a batch at a time
(``dynofa train`` holds its training images in memory), so a dataset larger than memory costs disk, not RAM.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dynofa_ros.datasets import cifar10
from dynofa_ros.datasets.images import decode_image, is_image_name, list_image_folder

SPLITS = ("train", "test")
TEST_FOLDERS = ("test", "val")  # the first one present is the test split
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 0
DATA_ENV = "DYNOFA_DATA"
CACHE_ENV = "DYNOFA_CACHE"
FORMS = ("an ImageFolder (train/ and test/ or val/ of <class>/<image>, or only <class>/<image>), a tarball "
         "<top>/{train,test}/<class>/<image>, or the CIFAR-10 python archive cifar-10-python.tar.gz (or its "
         "cifar-10-batches-py folder)")
_CACHE_FORMAT = 1


@dataclass
class LabelledImages:
    """One split: ``x`` N x H x W x 3 uint8 RGB, ``y`` int64 labels indexing ``class_names``."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


@dataclass
class ImageDataset:
    """A decoded dataset: ``*_x`` N x S x S x 3 uint8 RGB (maybe memory-mapped, read-only), ``*_y`` int64 labels
    indexing ``class_names``; ``source`` is what it was read from."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""

    @property
    def image_size(self) -> int:
        """Side of the stored (square) images, in pixels."""
        return int(self.train_x.shape[1])

    @property
    def name(self) -> str:
        """``cifar10`` for CIFAR-10 in any form, else the source's file or folder name without extensions."""
        return "cifar10" if self.class_names == cifar10.CLASS_NAMES else Path(self.source).name.split(".")[0]


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
        raise FileNotFoundError(f"dataset not found: {data}")
    return data


# -- storage size ----------------------------------------------------------------------------------------------

def fit_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` (area filter when shrinking) and crop the centre square."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.ascontiguousarray(img[top:top + size, left:left + size])


class _Sizer:
    """Decides the storage size from the first image seen: ``size``; else that image's own (square) size, kept
    while every image shares it; else ``fallback``."""

    def __init__(self, size: int | None, fallback: int | None) -> None:
        if size is not None and size <= 0:
            raise ValueError(f"image size must be positive, got {size}")
        self.size, self.fallback = size, fallback
        self.native: tuple[int, int] | None = None

    def __call__(self, img: np.ndarray, name: str) -> np.ndarray:
        if self.size is None:
            shape = img.shape[:2]
            if self.native is None and shape[0] == shape[1]:
                self.native = shape
            if shape == self.native:
                return img
            if self.fallback is None:
                raise ValueError(f"{name} is {shape[1]}x{shape[0]}, not {self.native_text}: the images differ in "
                                 "size; pass --image-size")
            if self.native is not None:
                raise ValueError(f"{name} is {shape[1]}x{shape[0]} after {self.native_text} images; pass "
                                 "--image-size to store them all at one size")
            self.size = self.fallback
        return fit_square(img, self.size)

    @property
    def native_text(self) -> str:
        return "square" if self.native is None else f"{self.native[1]}x{self.native[0]}"


# -- readers, one per form: each returns ({split: (x, y)}, class names) ----------------------------------------

def _stack(items: list[tuple[str, np.ndarray]], classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    return np.stack([img for _, img in items]), np.array([index[c] for c, _ in items], dtype=np.int64)


def _read_tarball(tar: tarfile.TarFile, path: Path, splits: tuple[str, ...], sizer: _Sizer, progress: bool):
    folders = {s: (TEST_FOLDERS if s == "test" else (s,)) for s in splits}
    found: dict[str, list[tuple[str, np.ndarray]]] = {f: [] for names in folders.values() for f in names}
    with tqdm(desc=f"decode {path.name}", unit="img", disable=not progress) as bar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or parts[1] not in found or not is_image_name(parts[3]):
                continue
            fileobj = tar.extractfile(member)
            if fileobj is not None:
                found[parts[1]].append((parts[2], sizer(decode_image(fileobj.read(), member.name), member.name)))
                bar.update()
    per_split = {s: next((found[f] for f in names if found[f]), []) for s, names in folders.items()}
    missing = [s for s, items in per_split.items() if not items]
    if missing:
        raise ValueError(f"{path} has no {'/'.join(missing)} images (<top>/<split>/<class>/<image>)")
    classes = tuple(sorted({c for items in per_split.values() for c, _ in items}))
    return {s: _stack(items, classes) for s, items in per_split.items()}, classes


def _decode_files(files: list[tuple[Path, int]], sizer: _Sizer, out: Path | None, desc: str, progress: bool
                  ) -> np.ndarray:
    """Decode ``files`` into one array, written straight into ``out`` (a ``.npy`` file) when given."""
    first = sizer(decode_image(files[0][0].read_bytes(), str(files[0][0])), str(files[0][0]))
    shape = (len(files), *first.shape)
    x = (np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8, shape=shape) if out is not None
         else np.empty(shape, np.uint8))
    x[0] = first
    for i, (path, _) in enumerate(tqdm(files[1:], desc=desc, unit="img", disable=not progress), start=1):
        x[i] = sizer(decode_image(path.read_bytes(), str(path)), str(path))
    return x


def _holdout(labels: np.ndarray) -> np.ndarray:
    """Seeded, class-stratified :data:`HOLDOUT_FRACTION` of the indices (at least one per class)."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:max(1, round(HOLDOUT_FRACTION * np.sum(labels == c)))]
              for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def folder_layout(root: Path) -> dict[str, Path | None]:
    """Which folder holds each split: ``{"train": root/train, "test": root/test or root/val}``, or, for a tree
    of class folders only, ``{"train": root, "test": None}`` (the test split is held out of it)."""
    train = root / "train"
    test = next((root / f for f in TEST_FOLDERS if (root / f).is_dir()), None)
    if train.is_dir() or test is not None:
        return {"train": train if train.is_dir() else None, "test": test}
    return {"train": root, "test": None}


def _read_folder(root: Path, splits: tuple[str, ...], sizer: _Sizer, progress: bool, out: Path | None):
    layout = folder_layout(root)
    if layout["test"] is None and layout["train"] == root:  # class folders only: hold out the test split
        classes, listed = list_image_folder(root)
        files = [(p, lab) for p, lab in listed if lab >= 0]
        labels = np.array([lab for _, lab in files], np.int64)
        test = _holdout(labels)
        keep = {"test": test, "train": np.setdiff1d(np.arange(len(files)), test)}
        chosen = {s: ([files[i] for i in keep[s]], classes) for s in splits}
    else:
        missing = [s for s in splits if layout[s] is None]
        if missing:
            raise ValueError(f"{root} has no {'/'.join(missing)} folder; give {FORMS}")
        chosen = {}
        for split in splits:
            names, listed = list_image_folder(layout[split])
            chosen[split] = ([(p, lab) for p, lab in listed if lab >= 0], names)
        classes = chosen["train" if "train" in chosen else splits[0]][1]
        for split, (_, names) in chosen.items():
            if not set(names) <= set(classes):
                raise ValueError(f"{root}: {split} classes {sorted(set(names) - set(classes))} are not training "
                                 "classes")
    result = {}
    for split, (files, names) in chosen.items():
        if not files:
            raise ValueError(f"{root}: no {split} images in class folders")
        remap = np.array([classes.index(c) for c in names], np.int64)
        x = _decode_files(files, sizer, None if out is None else out / f"{split}_x.npy", f"decode {split}", progress)
        result[split] = (x, remap[[lab for _, lab in files]])
    return result, classes


def read_dataset(data: Path | str, splits: tuple[str, ...] = SPLITS, size: int | None = None,
                 fallback_size: int | None = None, progress: bool = False, out: Path | None = None):
    """``({split: (x, y)}, class names)`` from any form in the module docstring; ValueError for unreadable or
    malformed data, FileNotFoundError when ``data`` does not exist. With ``out``, folder images are decoded
    straight into ``out/<split>_x.npy``."""
    path = Path(data)
    sizer = _Sizer(size, fallback_size)
    if path.is_dir():
        batches = cifar10.python_batches_dir(path)
        if batches is not None:
            return cifar10.read_python_folder(batches, splits, sizer)
        return _read_folder(path, splits, sizer, progress, out)
    if not path.is_file():
        raise FileNotFoundError(f"dataset not found: {path}")
    try:
        if cifar10.is_python_archive(path):
            return cifar10.read_python_archive(path, splits, sizer)
        with tarfile.open(path, "r:*") as tar:
            return _read_tarball(tar, path, splits, sizer, progress)
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"corrupt or unreadable dataset archive {path}: {exc}") from exc


def load_split(data: Path | str, split: str = "test", size: int | None = None, fallback_size: int | None = None
               ) -> LabelledImages:
    """One split of ``data`` (any form), decoded in memory, not cached."""
    splits, classes = read_dataset(data, (split,), size, fallback_size)
    return LabelledImages(*splits[split], classes)


# -- the cache ---------------------------------------------------------------------------------------------------

def _stamp(source: Path) -> Iterable[str]:
    stat = source.stat()
    yield f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if source.is_dir():  # a folder's own mtime misses edits deeper down: stamp the files
        for path in sorted(source.rglob("*")):
            if path.is_file():
                st = path.stat()
                yield f"{path.relative_to(source)}|{st.st_size}|{st.st_mtime_ns}"


def cache_folder(source: Path, cache_dir: Path, size: int | None, fallback_size: int | None) -> Path:
    """Where ``source`` decoded at ``size`` (``fallback_size``) is cached."""
    digest = hashlib.sha256(f"v{_CACHE_FORMAT}|{size}|{fallback_size}".encode())
    for line in _stamp(source):
        digest.update(line.encode())
    return cache_dir / f"{source.name.split('.')[0]}-{digest.hexdigest()[:16]}"


def _read_cache(folder: Path, source: Path) -> ImageDataset:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        arrays = {f"{s}_{k}": np.load(folder / f"{s}_{k}.npy", mmap_mode="r" if k == "x" else None)
                  for s in SPLITS for k in "xy"}
        return ImageDataset(**arrays, class_names=tuple(meta["class_names"]), source=str(source))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"corrupt data cache {folder} ({exc}); delete it to rebuild") from exc


def load_dataset(data: Path | str | None = None, cache_dir: Path | str | None = None, size: int | None = None,
                 fallback_size: int | None = None, progress: bool = True) -> ImageDataset:
    """Training and test splits of ``data`` (else ``$DYNOFA_DATA``), any form, decoded once into the cache and
    memory-mapped from there (see the module docstring for ``size``/``fallback_size``)."""
    source = training_data(data)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = cache_folder(source, cache_root, size, fallback_size)
    if not (folder / "meta.json").is_file():
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            splits, classes = read_dataset(source, SPLITS, size, fallback_size, progress, out=tmp)
            for split, (x, y) in splits.items():
                if not isinstance(x, np.memmap):
                    np.save(tmp / f"{split}_x.npy", x)
                else:
                    x.flush()
                np.save(tmp / f"{split}_y.npy", y)
            (tmp / "meta.json").write_text(json.dumps({"source": str(source), "class_names": list(classes)}))
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_cache(folder, source)
