"""Batch-norm recalibration of a sub-network (``ofa``'s ``set_running_statistics``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics
from torch import nn

from dynofa_ros.offline.data import ImageRows, scaled_batch, to_input
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.spec import SupernetSpec

if TYPE_CHECKING:
    from dynofa_ros.supernet.bn import BnStats

CALIB_SEED = 0
# Calibration images for a library's stored statistics (and anything that reports a level's top-1): on the
# shipped library, 20 000 instead of 2 000 raised every level's validation top-1 (+0.18 to +0.62 points, mean
# +0.42; docs/RESULTS.md). The search and the training's quick validation keep 2 000: they only rank subnets.
LIBRARY_N_CALIB = 20_000


Images = np.ndarray | ImageRows | torch.Tensor  # N x H x W x 3 uint8, indexed by rows


def as_uint8_tensor(images: Images, device: torch.device | str) -> torch.Tensor:
    """N x H x W x 3 uint8 images as a tensor on ``device`` (no copy when already there)."""
    if isinstance(images, ImageRows):
        images = images[:]
    if isinstance(images, np.ndarray) and not images.flags.writeable:  # a read-only memory-mapped split
        images = np.array(images)
    tensor = torch.as_tensor(images)
    if tensor.dtype != torch.uint8 or tensor.dim() != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 uint8 images, got {tuple(tensor.shape)} {tensor.dtype}")
    return tensor.to(device)


def uint8_batches(images: Images, batch: int, device: torch.device | str) -> Iterator[torch.Tensor]:
    """``images`` in order, ``batch`` at a time, each read (from a memory-mapped cache) and moved on its own."""
    for i in range(0, len(images), batch):
        yield as_uint8_tensor(images[i:i + batch], device)


def calibration_batches(images_uint8: Images, resolution: int, mean: Sequence[float], std: Sequence[float],
                        device: torch.device | str, n: int, batch: int = 500, seed: int = CALIB_SEED
                        ) -> Iterator[tuple[torch.Tensor, None]]:
    """``n`` of the images (all when fewer), picked and ordered by a seeded permutation, as normalised batches
    at ``resolution`` for ``ofa``'s ``set_running_statistics`` (one pass; each batch read when it is reached, so
    only one batch is in memory).

    Always shuffled: ``ofa`` averages per-batch variances, which underestimate the variance when a batch holds
    one class (the training split is stored class by class: calibrating on all of it unshuffled cost ~1.2 points
    of validation top-1 per level).
    """
    if n <= 0 or batch <= 0:
        raise ValueError(f"n and batch must be positive, got n={n}, batch={batch}")
    if len(images_uint8) == 0:
        raise ValueError("no calibration images")
    pick = torch.randperm(len(images_uint8), generator=torch.Generator().manual_seed(seed))[:n]
    if isinstance(images_uint8, torch.Tensor):
        pick = pick.to(images_uint8.device)
    else:
        pick = pick.numpy()
    batch = scaled_batch(batch, resolution)
    return ((to_input(as_uint8_tensor(images_uint8[pick[i:i + batch]], device), resolution, mean, std), None)
            for i in range(0, len(pick), batch))


def recalibrate_bn(supernet: nn.Module, arch: SubnetArch, images_uint8: Images,
                   n: int = 2000, batch: int = 500, spec: SupernetSpec | None = None) -> None:
    """Activate ``arch`` and set the running mean/var of its BN channels from ``n`` of the images
    (:func:`calibration_batches`: the same seeded subset every time, so a level's statistics are reproducible),
    fed at ``arch.resolution``."""
    spec = spec or SupernetSpec()
    device = next(supernet.parameters()).device
    batches = calibration_batches(images_uint8, arch.resolution, spec.mean, spec.std, device, n, batch)
    arch.apply(supernet)
    set_running_statistics(supernet, batches)


def calibrate_bn(supernet: nn.Module, arch: SubnetArch, images_uint8: Images,
                 n: int = 2000, batch: int = 500, spec: SupernetSpec | None = None) -> BnStats:
    """Recalibrate ``arch``'s BN statistics on ``n`` images and return them (active channels only)."""
    from dynofa_ros.supernet.bn import collect_bn_stats

    recalibrate_bn(supernet, arch, images_uint8, n, batch, spec)
    return collect_bn_stats(supernet, arch)
