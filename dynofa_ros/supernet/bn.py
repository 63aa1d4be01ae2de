"""Per-subnet batch-norm statistics: collect, apply (slow and precomputed fast path), save, load.

A subnet's statistics are keyed by the name of the ``nn.BatchNorm2d`` module that holds the running
buffers (for ``ofa``'s ``DynamicBatchNorm2d`` that is its inner ``.bn``) and hold the mean and variance
of the channels the subnet uses only (the first ``c`` entries of the buffers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.tensor_file import read_tensor_dict, save_tensor_dict

BnStats = dict[str, tuple[Tensor, Tensor]]


class BnStatsError(ValueError):
    """A BN statistics file or record that does not fit its supernet/levels."""


def _dynamic_bn_type() -> type[nn.Module]:
    from ofa.imagenet_classification.elastic_nn.modules.dynamic_op import DynamicBatchNorm2d

    return DynamicBatchNorm2d


def active_bn_channels(supernet: nn.Module, arch: SubnetArch) -> dict[str, int]:
    """Apply ``arch`` and return, for every BN layer its forward pass uses, the active channel count.

    Runs one tiny forward pass (eval mode, no grad, batch 1 at ``arch.resolution``) with hooks, so it
    follows exactly what ``ofa``'s forward does; the module's training flag is restored afterwards.
    """
    dynamic_bn = _dynamic_bn_type()
    inner = {id(m.bn) for m in supernet.modules() if isinstance(m, dynamic_bn)}
    channels: dict[str, int] = {}
    hooks = []
    for name, module in supernet.named_modules():
        if isinstance(module, dynamic_bn):
            key = f"{name}.bn"
        elif isinstance(module, nn.BatchNorm2d) and id(module) not in inner:
            key = name
        else:
            continue

        def hook(_m: nn.Module, args: tuple[Tensor, ...], key: str = key) -> None:
            channels[key] = int(args[0].shape[1])

        hooks.append(module.register_forward_pre_hook(hook))
    was_training = supernet.training
    device = next(supernet.parameters()).device
    try:
        arch.apply(supernet)
        supernet.eval()
        with torch.inference_mode():
            supernet(torch.zeros(1, 3, arch.resolution, arch.resolution, device=device))
    finally:
        for h in hooks:
            h.remove()
        supernet.train(was_training)
    return channels


def _bn_modules(supernet: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {n: m for n, m in supernet.named_modules() if isinstance(m, nn.BatchNorm2d)}


def collect_bn_stats(supernet: nn.Module, arch: SubnetArch) -> BnStats:
    """Copy the running mean/var of the BN channels ``arch`` uses (sets ``arch`` active)."""
    modules = _bn_modules(supernet)
    stats: BnStats = {}
    for name, c in active_bn_channels(supernet, arch).items():
        bn = modules[name]
        stats[name] = (bn.running_mean[:c].detach().clone(), bn.running_var[:c].detach().clone())
    return stats


def _check_stats(modules: dict[str, nn.BatchNorm2d], stats: BnStats) -> None:
    for name, (mean, var) in stats.items():
        bn = modules.get(name)
        if bn is None:
            raise BnStatsError(f"BN statistics name {name!r}, which is not a BatchNorm2d of the supernet")
        if mean.ndim != 1 or mean.shape != var.shape or mean.numel() > bn.num_features:
            raise BnStatsError(
                f"BN statistics for {name!r} have shapes {tuple(mean.shape)}/{tuple(var.shape)}; "
                f"the layer has {bn.num_features} channels"
            )


def apply_bn_stats(supernet: nn.Module, stats: BnStats) -> None:
    """Copy ``stats`` into the supernet's running buffers (first ``c`` channels of each layer)."""
    modules = _bn_modules(supernet)
    _check_stats(modules, stats)
    with torch.no_grad():
        for name, (mean, var) in stats.items():
            bn = modules[name]
            c = mean.numel()
            bn.running_mean[:c].copy_(mean)
            bn.running_var[:c].copy_(var)


@dataclass
class BnCopyPlan:
    """Precomputed (buffer slice, statistics) pairs for one level: ``apply()`` is one foreach copy (``extend`` adds
    other per-level tensors to it, as the runtime does with a level's classifier head).

    Build it after the supernet has reached its final device; moving the supernet afterwards makes
    the slices stale.
    """

    targets: list[Tensor]
    sources: list[Tensor]

    @classmethod
    def build(cls, supernet: nn.Module, stats: BnStats) -> BnCopyPlan:
        modules = _bn_modules(supernet)
        _check_stats(modules, stats)
        targets: list[Tensor] = []
        sources: list[Tensor] = []
        for name, (mean, var) in stats.items():
            bn = modules[name]
            c = mean.numel()
            targets += [bn.running_mean[:c], bn.running_var[:c]]
            sources += [mean.to(bn.running_mean), var.to(bn.running_var)]
        return cls(targets, sources)

    def extend(self, targets: list[Tensor], sources: list[Tensor]) -> None:
        """Copy ``sources`` into ``targets`` too, in the same foreach copy."""
        if len(targets) != len(sources):
            raise ValueError(f"{len(targets)} targets for {len(sources)} sources")
        self.targets += targets
        self.sources += sources

    def apply(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.targets, self.sources)


def save_bn_stats(path: str | Path, per_level: Sequence[BnStats]) -> None:
    """Write every level's statistics as ``{"<level>/<bn name>/mean|var": tensor}`` (float32)."""
    flat: dict[str, Tensor] = {}
    for i, stats in enumerate(per_level):
        for name, (mean, var) in stats.items():
            flat[f"{i}/{name}/mean"] = mean
            flat[f"{i}/{name}/var"] = var
    save_tensor_dict(path, flat)


def load_bn_stats(path: str | Path) -> list[BnStats]:
    """Read a file written by :func:`save_bn_stats`; BnStatsError/FileNotFoundError on a bad file."""
    flat = read_tensor_dict(path, "BN statistics", BnStatsError)
    halves: dict[int, dict[str, dict[str, Tensor]]] = {}
    for key, value in flat.items():
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in ("mean", "var"):
            raise BnStatsError(f"{path}: key {key!r} is not '<level>/<bn name>/mean|var'")
        if not isinstance(value, Tensor) or value.ndim != 1:
            raise BnStatsError(f"{path}: {key!r} is not a 1-D tensor")
        halves.setdefault(int(parts[0]), {}).setdefault(parts[1], {})[parts[2]] = value.float()
    if sorted(halves) != list(range(len(halves))):
        raise BnStatsError(f"{path}: level indices {sorted(halves)} are not 0..{len(halves) - 1}")
    per_level: list[BnStats] = []
    for i in range(len(halves)):
        stats: BnStats = {}
        for name, pair in halves[i].items():
            if set(pair) != {"mean", "var"} or pair["mean"].shape != pair["var"].shape:
                raise BnStatsError(f"{path}: level {i} layer {name!r} needs a mean and a var of one shape")
            stats[name] = (pair["mean"], pair["var"])
        per_level.append(stats)
    return per_level
