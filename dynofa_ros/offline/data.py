"""Training input: the seeded train/val split, network input tensors, on-device augmentation.

Reading and caching the datasets themselves is :mod:`dynofa_ros.datasets` (no torch), which the runtime uses too.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dynofa_ros.supernet.preprocess import normalisation


@dataclass
class Split:
    """Indices into the training arrays: disjoint ``train`` and ``val`` (never trained on)."""

    train: np.ndarray
    val: np.ndarray


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


@dataclass(frozen=True)
class ImageRows:
    """Rows ``index`` of an N x H x W x 3 image array, read when asked for: a slice or an index array copies only
    those rows, so a split of a memory-mapped dataset cache never has to fit in memory at once."""

    images: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        return self.images[np.asarray(self.index[rows])]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)


FIT_BUDGET_BYTES = 2 << 30  # images a level's head and BN tuning hold in memory at once, by default


def fit_limit(image_shape: Sequence[int], budget: int = FIT_BUDGET_BYTES) -> int:
    """How many uint8 images of ``image_shape`` (H, W, 3) fit in ``budget`` bytes."""
    return max(1, budget // int(np.prod(image_shape)))


BATCH_RESOLUTION = 64  # batch sizes are given for this input size and shrink with the pixels above it
MIN_BATCH = 8


def scaled_batch(batch: int, resolution: int) -> int:
    """``batch`` for inputs of ``resolution`` px: unchanged up to :data:`BATCH_RESOLUTION`, then shrunk with the
    pixel count (at least :data:`MIN_BATCH`), so activation memory stays about the same at any resolution."""
    if resolution <= BATCH_RESOLUTION:
        return batch
    return max(min(batch, MIN_BATCH), int(batch * (BATCH_RESOLUTION / resolution) ** 2))


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

    def __init__(self, images_uint8: np.ndarray | ImageRows, device: torch.device, pad: int = 4) -> None:
        images = torch.from_numpy(np.require(images_uint8, requirements=["C", "W"])).to(device)
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
