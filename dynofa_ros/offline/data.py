"""CIFAR-10 data cache (decoded uint8 arrays), stratified train/val split, ImageFolder loading.

The tarball (ImageFolder layout ``cifar10/{train,test}/<class>/NNNN.jpg``) is decoded once, straight
from the compressed stream with OpenCV (no 60 000 small files written to disk), into one ``.npz`` in
the cache directory; later calls load the ``.npz`` (well under a second). Images are kept in RGB
order as ``N x H x W x 3`` uint8. Nothing is ever downloaded.
"""

from __future__ import annotations

import argparse
import functools
import os
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dynofa_ros.supernet.preprocess import normalisation

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_NAME = "cifar10-uint8.npz"
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class Cifar10Arrays:
    """Decoded CIFAR-10: ``*_x`` are N x 32 x 32 x 3 uint8 RGB, ``*_y`` int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]


@dataclass
class Split:
    """Indices into the training arrays: disjoint ``train`` and ``val`` (never trained on)."""

    train: np.ndarray
    val: np.ndarray


def default_tarball() -> Path:
    """``<repo>/../shared/data/cifar10-jpeg.tar.gz``."""
    return REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def default_cache_dir() -> Path:
    """``$DYNOFA_CACHE`` if set, else ``<repo>/.cache``."""
    env = os.environ.get("DYNOFA_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache"


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode encoded image bytes to H x W x 3 uint8 RGB; ValueError naming ``name`` if unreadable."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode image {name!r} (corrupt or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _decode_tarball(tarball: Path, progress: bool) -> Cifar10Arrays:
    per_split: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    try:
        with tarfile.open(tarball, "r:gz") as tar, tqdm(desc="decode CIFAR-10", unit="img", total=60000,
                                                         disable=not progress) as bar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 4 or parts[1] not in per_split:
                    continue
                if not parts[3].lower().endswith(IMG_EXTENSIONS):
                    continue
                fileobj = tar.extractfile(member)
                if fileobj is None:
                    continue
                img = decode_image(fileobj.read(), member.name)
                if img.shape[:2] != (32, 32):
                    raise ValueError(f"{member.name}: expected 32x32, got {img.shape[1]}x{img.shape[0]}")
                per_split[parts[1]].append((parts[2], img))
                bar.update()
    except (tarfile.TarError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise ValueError(f"corrupt or unreadable CIFAR-10 tarball {tarball}: {exc}") from exc
    if not per_split["train"] or not per_split["test"]:
        raise ValueError(f"{tarball} lacks cifar10/train/<class>/*.jpg or cifar10/test/<class>/*.jpg images")
    classes = tuple(sorted({c for c, _ in per_split["train"]}))
    index = {c: i for i, c in enumerate(classes)}
    arrays = {}
    for split, items in per_split.items():
        unknown = {c for c, _ in items} - set(index)
        if unknown:
            raise ValueError(f"{tarball}: test classes {sorted(unknown)} missing from train")
        arrays[f"{split}_x"] = np.stack([img for _, img in items])
        arrays[f"{split}_y"] = np.array([index[c] for c, _ in items], dtype=np.int64)
    return Cifar10Arrays(class_names=classes, **arrays)


def load_cifar10(tarball: Path | str | None = None, cache_dir: Path | str | None = None,
                 progress: bool = True) -> Cifar10Arrays:
    """Decoded CIFAR-10, from the ``.npz`` cache if present, else decoded from ``tarball`` and cached."""
    tarball = Path(tarball) if tarball is not None else default_tarball()
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = cache_dir / CACHE_NAME
    if cache.exists():
        try:
            with np.load(cache) as z:
                return Cifar10Arrays(z["train_x"], z["train_y"], z["test_x"], z["test_y"],
                                     tuple(str(c) for c in z["class_names"]))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"corrupt data cache {cache} ({exc}); delete it to rebuild") from exc
    if not tarball.is_file():
        raise FileNotFoundError(f"CIFAR-10 tarball not found: {tarball} (nothing is downloaded)")
    data = _decode_tarball(tarball, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".tmp.npz")
    np.savez(tmp, train_x=data.train_x, train_y=data.train_y, test_x=data.test_x, test_y=data.test_y,
             class_names=np.array(data.class_names))
    tmp.replace(cache)
    return data


def stratified_split(labels: np.ndarray, val_size: int = 5000, seed: int = 0) -> Split:
    """Seeded split of ``labels``' indices with ``val_size`` validation samples, class-proportional."""
    labels = np.asarray(labels)
    if not 0 < val_size < len(labels):
        raise ValueError(f"val_size must be in (0, {len(labels)}), got {val_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts * val_size / len(labels)).astype(int)
    # hand the rounding remainder to the largest classes so the sizes add up exactly
    for i in np.argsort(-counts)[: val_size - quota.sum()]:
        quota[i] += 1
    train, val = [], []
    for c, q in zip(classes, quota, strict=True):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val.append(idx[:q])
        train.append(idx[q:])
    return Split(np.sort(np.concatenate(train)), np.sort(np.concatenate(val)))


def subset(indices: np.ndarray, limit: int | None, seed: int = 0) -> np.ndarray:
    """A seeded random ``limit``-sized subset of ``indices`` (sorted; all of them when ``limit`` is None).

    The arrays are ordered by class, so a plain prefix would hold a single class.
    """
    if limit is None or limit >= len(indices):
        return indices
    if limit <= 0:
        raise ValueError(f"subset size must be positive, got {limit}")
    return np.sort(np.random.default_rng(seed).choice(indices, limit, replace=False))


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
             for path in sorted(root.rglob("*")) if path.suffix.lower() in IMG_EXTENSIONS and path.is_file()]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMG_EXTENSIONS)}) under {root}")
    return classes, files


def load_image_folder(root: Path | str, size: int = 32) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
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
    for i, (path, _) in enumerate(tqdm(files, desc=f"load {Path(root).name}", unit="img")):
        img = decode_image(path.read_bytes(), str(path))
        interp = cv2.INTER_AREA if min(img.shape[:2]) > size else cv2.INTER_LINEAR
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=interp)
        images[i] = img
    return images, np.array([label for _, label in files], dtype=np.int64), classes


@functools.lru_cache(maxsize=32)
def _norm_constants(device: torch.device, mean: tuple[float, ...], std: tuple[float, ...]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    # cached: building them per batch would be a blocking host-to-device copy every step
    scale, shift = normalisation(mean, std)
    return scale.view(1, 3, 1, 1).to(device), shift.view(1, 3, 1, 1).to(device)


def to_input(images: torch.Tensor, resolution: int, mean: Sequence[float], std: Sequence[float],
             channels_last: bool = False) -> torch.Tensor:
    """N x H x W x 3 uint8 tensor -> normalised float N x 3 x r x r network input (bilinear resize).

    Runs on the tensor's device; the result is contiguous in the requested memory format.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 uint8 images, got {tuple(images.shape)} {images.dtype}")
    scale, shift = _norm_constants(images.device, tuple(mean), tuple(std))
    x = images.permute(0, 3, 1, 2).float() * scale + shift
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class DeviceAugmenter:
    """Holds the zero-padded uint8 training images on the device; random crop + flip by one gather."""

    def __init__(self, images_uint8: np.ndarray, device: torch.device, pad: int = 4) -> None:
        images = torch.from_numpy(np.ascontiguousarray(images_uint8)).to(device)
        self.padded = F.pad(images, (0, 0, pad, pad, pad, pad)).contiguous()
        self.height, self.width = images.shape[1:3]
        self.pad = pad
        self.rows = torch.arange(self.height, device=device)
        self.cols = torch.arange(self.width, device=device)

    def __call__(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augmented B x H x W x 3 uint8 batch of the images at ``idx``."""
        n, dev = len(idx), idx.device
        oy = torch.randint(0, 2 * self.pad + 1, (n, 1), device=dev, generator=gen)
        ox = torch.randint(0, 2 * self.pad + 1, (n, 1), device=dev, generator=gen)
        flip = torch.rand((n, 1), device=dev, generator=gen) < 0.5
        rows = oy + self.rows
        cols = ox + torch.where(flip, self.cols.flip(0), self.cols)
        return self.padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa data``."""
    parser.add_argument("--data", type=Path, default=None, help=f"CIFAR-10 tarball (default: {default_tarball()})")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="decoded-data cache (default: $DYNOFA_CACHE or <repo>/.cache)")


def run(args: argparse.Namespace) -> int:
    """``dynofa data``: decode the tarball into the cache (once) and print what it holds."""
    data = load_cifar10(args.data, args.cache_dir)
    cache = (args.cache_dir or default_cache_dir()) / CACHE_NAME
    for split in ("train", "test"):
        labels = getattr(data, f"{split}_y")
        counts = np.bincount(labels, minlength=len(data.class_names))
        print(f"{split}: {len(labels)} images {tuple(getattr(data, f'{split}_x').shape[1:])} uint8, "
              f"{counts.min()}-{counts.max()} per class")
    print(f"classes: {', '.join(data.class_names)}")
    print(f"cache: {cache} ({cache.stat().st_size / 2**20:.0f} MiB)")
    return 0
