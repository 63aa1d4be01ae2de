"""Top-1 accuracy (after BN recalibration, for a family with BN statistics), MACs, parameter counts and latency of
sub-networks of either supernet family."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dynofa_ros.offline.bn_tuning import BnTuneConfig, fit_level
from dynofa_ros.offline.calibrate import Images, calibrate_bn, uint8_batches
from dynofa_ros.offline.data import scaled_batch, to_input
from dynofa_ros.offline.profile import cpu_threads, measure_subnets
from dynofa_ros.supernet.cost import subnet_cost
from dynofa_ros.supernet.family import Arch, Spec, family_of
from dynofa_ros.supernet.heads import using_head
from dynofa_ros.supernet.spec import SupernetSpec


@dataclass
class SubnetEval:
    """One evaluated sub-network: top-1 on the evaluation split, MACs and parameters."""

    arch: Arch
    top1: float
    macs: int
    params: int


@torch.no_grad()
def accuracy(net: nn.Module, images_uint8: Images, labels: np.ndarray | torch.Tensor,
             resolution: int, mean: Sequence[float], std: Sequence[float], batch: int = 500) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on uint8 images fed at ``resolution``."""
    device = next(net.parameters()).device
    labels = torch.as_tensor(labels).to(device)
    if len(images_uint8) == 0 or len(images_uint8) != len(labels):
        raise ValueError(f"need as many labels as images (>0): {len(images_uint8)} images, {len(labels)} labels")
    was_training = net.training
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    batch = scaled_batch(batch, resolution)
    for i, chunk in enumerate(uint8_batches(images_uint8, batch, device)):
        correct += (net(to_input(chunk, resolution, mean, std)).argmax(1) == labels[i * batch:(i + 1) * batch]).sum()
    net.train(was_training)
    return correct.item() / len(labels)


def top1(supernet: nn.Module, arch: Arch, images_uint8: Images,
         labels: np.ndarray | torch.Tensor, spec: Spec | None = None, batch: int = 500) -> float:
    """Top-1 accuracy of ``arch`` with the supernet's current BN statistics (no recalibration)."""
    spec = spec or SupernetSpec()
    family_of(spec).apply(supernet, arch)
    return accuracy(supernet, images_uint8, labels, arch.resolution, spec.mean, spec.std, batch)


def check_level_fit(spec: Spec, fitted: bool) -> None:
    """ValueError when per-subnet classifier heads or BN tuning are ``fitted`` for a family without batch norm."""
    if fitted and not family_of(spec).bn_statistics:
        raise ValueError(f"per-subnet classifier heads and BN tuning are fitted for supernets with batch norm, not "
                         f"{spec.family} ones")


def evaluate_arch(supernet: nn.Module, arch: Arch, images_uint8: Images,
                  labels: np.ndarray | torch.Tensor, calib_uint8: Images,
                  spec: Spec | None = None, n_calib: int = 2000, batch: int = 500,
                  head_labels: np.ndarray | torch.Tensor | None = None, tune: BnTuneConfig | None = None) -> float:
    """Recalibrate ``arch``'s BN on ``n_calib`` of ``calib_uint8``, then its top-1 on the given split; with
    ``head_labels`` (the labels of all ``calib_uint8``) scored with its own classifier head fitted on them, after
    its own BN scale/shift are trained with ``tune`` (``offline.bn_tuning.fit_level``, as the library's levels).
    A family without BN statistics is scored as it is (``calib_uint8`` unused); ValueError if asked for a fitted
    head or BN tuning then."""
    spec = spec or SupernetSpec()
    check_level_fit(spec, head_labels is not None or tune is not None)
    if not family_of(spec).bn_statistics:
        return top1(supernet, arch, images_uint8, labels, spec, batch)
    stats = calibrate_bn(supernet, arch, calib_uint8, n_calib, batch, spec)
    _, head = fit_level(supernet, arch, stats, calib_uint8, head_labels, spec, tune)
    with using_head(supernet, head):
        return top1(supernet, arch, images_uint8, labels, spec, batch)


def evaluate_many(supernet: nn.Module, archs: Sequence[Arch], images_uint8: Images,
                  labels: np.ndarray | torch.Tensor, calib_uint8: Images,
                  spec: Spec | None = None, n_calib: int = 2000, batch: int = 500,
                  progress: bool = True) -> list[SubnetEval]:
    """:func:`evaluate_arch` and :func:`subnet_cost` for each arch, with a progress bar. Tensors already on the
    supernet's device stay there; arrays are read a batch at a time."""
    results = []
    for arch in tqdm(archs, desc="evaluate subnets", unit="net", disable=not progress):
        acc = evaluate_arch(supernet, arch, images_uint8, labels, calib_uint8, spec, n_calib, batch)
        results.append(SubnetEval(arch, acc, *subnet_cost(supernet, arch)))
    return results


def evaluate_subnets(supernet: nn.Module, spec: Spec, subnets: Sequence[tuple[str, Arch]],
                     images_uint8: np.ndarray, labels: np.ndarray, calib_uint8: np.ndarray, n_calib: int, split: str,
                     head_labels: np.ndarray | None = None, tune: BnTuneConfig | None = None,
                     profiles: Sequence[str] = (), repeats: int = 50) -> list[dict[str, Any]]:
    """A record per named subnet: :func:`evaluate_arch` on the ``split`` images (BN from ``n_calib`` of
    ``calib_uint8``; with ``head_labels`` its own head, after BN tuning with ``tune``), :func:`subnet_cost` and,
    per CPU profile in ``profiles``, batch-1 latency from ``repeats`` timed runs (subnets timed interleaved).
    A family without BN statistics records ``n_calib`` 0: nothing is calibrated."""
    n_calib = min(n_calib, len(calib_uint8)) if family_of(spec).bn_statistics else 0
    records = [{"name": name, "arch": arch.to_dict(), "split": split, "images": len(labels), "n_calib": n_calib,
                "heads": "shared" if head_labels is None else "fitted per subnet",
                "bn_tuning": None if tune is None else tune.note(len(calib_uint8)),
                "top1": evaluate_arch(supernet, arch, images_uint8, labels, calib_uint8, spec, n_calib,
                                      head_labels=head_labels, tune=tune),
                **dict(zip(("macs", "params"), subnet_cost(supernet, arch), strict=True))}
               for name, arch in tqdm(subnets, desc=f"evaluate on {split}", unit="net")]
    for profile in profiles:
        timings = measure_subnets(supernet, [a for _, a in subnets], cpu_threads(profile), repeats=repeats,
                                  rounds=min(5, repeats))
        for rec, t in zip(records, timings, strict=True):
            rec.setdefault("latency", {})[profile] = {"p50_s": t.p50_s, "p90_s": t.p90_s, "method": t.method}
    return records
