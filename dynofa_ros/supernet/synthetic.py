"""A random-weight library with calibrated BN statistics, for tests and benchmarks without trained weights."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.bn import collect_bn_stats
from dynofa_ros.supernet.heads import LevelHead, final_linear
from dynofa_ros.supernet.library import Level, SubnetLibrary, default_library_path
from dynofa_ros.supernet.library_write import write_library
from dynofa_ros.supernet.runtime import extract_subnet
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

TINY_SPEC = SupernetSpec(resolutions=(32, 40, 48))


def default_archs(spec: SupernetSpec, n_levels: int, seed: int = 0) -> list[SubnetArch]:
    """Smallest subnet, ``n_levels - 2`` seeded random ones (growing resolution), largest subnet."""
    if n_levels < 2:
        raise ValueError(f"need at least 2 levels, got {n_levels}")
    rng = random.Random(seed)
    middle = [SubnetArch.sample(spec, rng) for _ in range(n_levels - 2)]
    resolutions = sorted(spec.resolutions)
    middle = [SubnetArch(a.ks, a.e, a.d, resolutions[min(i + 1, len(resolutions) - 1)]) for i, a in enumerate(middle)]
    return [SubnetArch.smallest(spec), *middle, SubnetArch.largest(spec)]


def random_library(directory: str | Path, spec: SupernetSpec = TINY_SPEC, archs: Sequence[SubnetArch] | None = None,
                   n_levels: int = 3, seed: int = 0, calib_images: int = 16, heads: bool = False) -> SubnetLibrary:
    """Write a random-weight supernet library into ``directory`` (levels' BN calibrated on noise images; with
    ``heads``, each level gets its own random classifier head).

    Top-1 is unknown (None) and no latency is recorded; MACs and params are counted on the extracted
    subnets with ``ofa``'s counter.
    """
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics
    from ofa.utils import count_net_flops, count_parameters

    torch.manual_seed(seed)
    archs = list(archs) if archs is not None else default_archs(spec, n_levels, seed)
    supernet = build_supernet(spec).eval()
    generator = torch.Generator().manual_seed(seed)
    levels, stats = [], []
    for i, arch in enumerate(archs):
        arch.validate(spec)
        arch.apply(supernet)
        r = arch.resolution
        images = torch.rand(calib_images, 3, r, r, generator=generator) * 4 - 2
        set_running_statistics(supernet, [(images[j:j + 8], None) for j in range(0, calib_images, 8)])
        stats.append(collect_bn_stats(supernet, arch))
        subnet = extract_subnet(supernet, arch)
        levels.append(Level(f"L{i}", arch, None, int(count_net_flops(subnet, (1, 3, r, r))),
                            int(count_parameters(subnet))))
    linear = final_linear(supernet)
    level_heads = None if not heads else [LevelHead(torch.randn(linear.weight.shape, generator=generator) * 0.1,
                                                    torch.randn(linear.bias.shape, generator=generator) * 0.1)
                                          for _ in levels]
    return write_library(directory, "synthetic-random-weights", supernet, spec, levels, stats,
                         eval_set="none (random weights)", calibration=f"{calib_images} random noise images per level",
                         heads=level_heads, heads_fit="random (synthetic)" if heads else "")


def shipped_or_synthetic(path: str | Path | None, tmp_dir: str | Path | None) -> tuple[Path, bool]:
    """The library to use and whether it is synthetic: ``path`` when given (FileNotFoundError if it is
    missing), else :func:`default_library_path`; when there is none, a 4-level random-weight library
    (default spec, 40-64 px) built in ``tmp_dir``, or FileNotFoundError when ``tmp_dir`` is None."""
    if path is not None and str(path):
        if not Path(path).is_file():
            raise FileNotFoundError(f"subnet library file not found: {path}")
        return Path(path), False
    try:
        return default_library_path(), False
    except FileNotFoundError:
        if tmp_dir is None:
            raise
    random_library(tmp_dir, spec=SupernetSpec(), n_levels=4)
    return Path(tmp_dir) / "library.json", True
