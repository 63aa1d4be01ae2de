"""Random-weight libraries of either supernet family (BN statistics calibrated on noise where the family has them),
for tests and benchmarks without trained weights."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from dynofa_ros.supernet.bn import BnStats, collect_bn_stats
from dynofa_ros.supernet.cost import subnet_cost
from dynofa_ros.supernet.family import OFA_MBV3, Arch, Spec, family_of
from dynofa_ros.supernet.heads import LevelHead, final_linear
from dynofa_ros.supernet.library import Level, SubnetLibrary, default_library_path, library_path
from dynofa_ros.supernet.library_write import write_library
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.vit_arch import ElasticViTSpec

TINY_SPEC = SupernetSpec(resolutions=(32, 40, 48))
TINY_VIT_SPEC = ElasticViTSpec(embed_dim_list=(16, 24, 32), depth_list=(1, 2, 3), heads_list=(1, 2),
                               mlp_ratio_list=(1.0, 2.0), head_dim=8, tokenizer_channels=8, resolutions=(24, 32))


def default_archs(spec: Spec, n_levels: int, seed: int = 0) -> list[Arch]:
    """Smallest subnet, ``n_levels - 2`` seeded random ones (growing resolution), largest subnet."""
    if n_levels < 2:
        raise ValueError(f"need at least 2 levels, got {n_levels}")
    family = family_of(spec)
    rng = random.Random(seed)
    middle = [family.sample(spec, rng) for _ in range(n_levels - 2)]
    resolutions = sorted(spec.resolutions)
    middle = [replace(a, resolution=resolutions[min(i + 1, len(resolutions) - 1)]) for i, a in enumerate(middle)]
    return [family.smallest(spec), *middle, family.largest(spec)]


def _noise_calibrated_stats(supernet: nn.Module, arch: Arch, calib_images: int, generator: torch.Generator) -> BnStats:
    """``arch``'s BN statistics recalibrated on ``calib_images`` uniform noise images."""
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics

    arch.apply(supernet)
    r = arch.resolution
    images = torch.rand(calib_images, 3, r, r, generator=generator) * 4 - 2
    set_running_statistics(supernet, [(images[j:j + 8], None) for j in range(0, calib_images, 8)])
    return collect_bn_stats(supernet, arch)


def random_library(directory: str | Path, spec: Spec = TINY_SPEC, archs: Sequence[Arch] | None = None,
                   n_levels: int = 3, seed: int = 0, calib_images: int = 16, heads: bool = False) -> SubnetLibrary:
    """Write a random-weight supernet library of ``spec``'s family into ``directory`` (:data:`TINY_VIT_SPEC` for a
    small elastic ViT one); where the family has BN statistics, each level's are calibrated on noise images. With
    ``heads`` (ofa_mbv3 only: its levels share the classifier's shape), each level gets its own random classifier head.

    Top-1 is unknown (None) and no latency is recorded; MACs and params are counted on the extracted subnets
    (:func:`~dynofa_ros.supernet.cost.subnet_cost`).
    """
    family = family_of(spec)
    if heads and family is not OFA_MBV3:
        raise ValueError(f"random per-level classifier heads are made for {OFA_MBV3.name} libraries, not {family.name}")
    torch.manual_seed(seed)
    archs = list(archs) if archs is not None else default_archs(spec, n_levels, seed)
    supernet = family.build(spec).eval()
    generator = torch.Generator().manual_seed(seed)
    levels, stats = [], []
    for i, arch in enumerate(archs):
        arch.validate(spec)
        if family.bn_statistics:
            stats.append(_noise_calibrated_stats(supernet, arch, calib_images, generator))
        levels.append(Level(f"L{i}", arch, None, *subnet_cost(supernet, arch)))
    linear = final_linear(supernet)
    level_heads = None if not heads else [LevelHead(torch.randn(linear.weight.shape, generator=generator) * 0.1,
                                                    torch.randn(linear.bias.shape, generator=generator) * 0.1)
                                          for _ in levels]
    calibration = f"{calib_images} random noise images per level" if family.bn_statistics else ""
    return write_library(directory, "synthetic-random-weights", supernet, spec, levels,
                         stats if family.bn_statistics else None, eval_set="none (random weights)",
                         calibration=calibration, heads=level_heads, heads_fit="random (synthetic)" if heads else "")


def shipped_or_synthetic(path: str | Path | None, tmp_dir: str | Path | None) -> tuple[Path, bool]:
    """The library to use and whether it is synthetic: ``path`` when given, a library JSON or a shipped model's
    name (:func:`library_path`; FileNotFoundError if it is missing), else :func:`default_library_path`; when there
    is none, a 4-level random-weight library (default spec, 40-64 px) built in ``tmp_dir``, or FileNotFoundError
    when ``tmp_dir`` is None."""
    if path is not None and str(path):
        path = library_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"subnet library file not found: {path}")
        return path, False
    try:
        return default_library_path(), False
    except FileNotFoundError:
        if tmp_dir is None:
            raise
    random_library(tmp_dir, spec=SupernetSpec(), n_levels=4)
    return Path(tmp_dir) / "library.json", True
