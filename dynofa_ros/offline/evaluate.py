"""Top-1 accuracy (after BN recalibration), MACs and parameter counts of sub-networks; ``dynofa evaluate``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from ofa.utils import count_net_flops, count_parameters
from torch import nn
from tqdm import tqdm

from dynofa_ros.offline.bn_tuning import BnTuneConfig, add_tune_arguments, fit_level, tune_config
from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB, as_uint8_tensor, calibrate_bn
from dynofa_ros.offline.data import scaled_batch, stratified_split, subset, to_input
from dynofa_ros.offline.options import add_data_arguments, add_supernet_arguments, load_checkpoint, load_data, val_size
from dynofa_ros.offline.profile import cpu_threads, measure_subnets
from dynofa_ros.offline.timing import processor_name
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.heads import using_head
from dynofa_ros.supernet.library import SubnetLibrary, default_library_path
from dynofa_ros.supernet.runtime import extract_subnet
from dynofa_ros.supernet.spec import SupernetSpec


@dataclass
class SubnetEval:
    """One evaluated sub-network: top-1 on the evaluation split, MACs and parameters."""

    arch: SubnetArch
    top1: float
    macs: int
    params: int


@torch.no_grad()
def accuracy(net: nn.Module, images_uint8: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
             resolution: int, mean: Sequence[float], std: Sequence[float], batch: int = 500) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on uint8 images fed at ``resolution``."""
    device = next(net.parameters()).device
    images = as_uint8_tensor(images_uint8, device)
    labels = torch.as_tensor(labels).to(device)
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need as many labels as images (>0): {len(images)} images, {len(labels)} labels")
    was_training = net.training
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    batch = scaled_batch(batch, resolution)
    for i in range(0, len(images), batch):
        correct += (net(to_input(images[i:i + batch], resolution, mean, std)).argmax(1) == labels[i:i + batch]).sum()
    net.train(was_training)
    return correct.item() / len(images)


def top1(supernet: nn.Module, arch: SubnetArch, images_uint8: np.ndarray | torch.Tensor,
         labels: np.ndarray | torch.Tensor, spec: SupernetSpec | None = None, batch: int = 500) -> float:
    """Top-1 accuracy of ``arch`` with the supernet's current BN statistics (no recalibration)."""
    spec = spec or SupernetSpec()
    arch.apply(supernet)
    return accuracy(supernet, images_uint8, labels, arch.resolution, spec.mean, spec.std, batch)


def evaluate_arch(supernet: nn.Module, arch: SubnetArch, images_uint8: np.ndarray | torch.Tensor,
                  labels: np.ndarray | torch.Tensor, calib_uint8: np.ndarray | torch.Tensor,
                  spec: SupernetSpec | None = None, n_calib: int = 2000, batch: int = 500,
                  head_labels: np.ndarray | torch.Tensor | None = None, tune: BnTuneConfig | None = None) -> float:
    """Recalibrate ``arch``'s BN on ``n_calib`` of ``calib_uint8``, then its top-1 on the given split; with
    ``head_labels`` (the labels of all ``calib_uint8``) scored with its own classifier head fitted on them, after
    its own BN scale/shift are trained with ``tune`` (``offline.bn_tuning.fit_level``, as the library's levels)."""
    spec = spec or SupernetSpec()
    stats = calibrate_bn(supernet, arch, calib_uint8, n_calib, batch, spec)
    _, head = fit_level(supernet, arch, stats, calib_uint8, head_labels, spec, tune)
    with using_head(supernet, head):
        return top1(supernet, arch, images_uint8, labels, spec, batch)


def subnet_cost(supernet: nn.Module, arch: SubnetArch) -> tuple[int, int]:
    """(MACs, parameters) of the extracted sub-network at ``arch.resolution`` (``ofa``'s counters)."""
    subnet = extract_subnet(supernet, arch)
    macs = count_net_flops(subnet, (1, 3, arch.resolution, arch.resolution))
    return int(macs), int(count_parameters(subnet))


def evaluate_many(supernet: nn.Module, archs: Sequence[SubnetArch], images_uint8: np.ndarray | torch.Tensor,
                  labels: np.ndarray | torch.Tensor, calib_uint8: np.ndarray | torch.Tensor,
                  spec: SupernetSpec | None = None, n_calib: int = 2000, batch: int = 500,
                  progress: bool = True) -> list[SubnetEval]:
    """:func:`evaluate_arch` and :func:`subnet_cost` for each arch, with a progress bar."""
    device = next(supernet.parameters()).device
    images, calib = as_uint8_tensor(images_uint8, device), as_uint8_tensor(calib_uint8, device)
    labels = torch.as_tensor(labels).to(device)
    results = []
    for arch in tqdm(archs, desc="evaluate subnets", unit="net", disable=not progress):
        acc = evaluate_arch(supernet, arch, images, labels, calib, spec, n_calib, batch)
        results.append(SubnetEval(arch, acc, *subnet_cost(supernet, arch)))
    return results


# ------------------------------------------------------------------------------------- dynofa evaluate

SPLITS = ("test", "val", "train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa evaluate``."""
    parser.add_argument("--library", type=Path, default=None, help="library whose levels name the subnets "
                        "(default: the shipped one)")
    add_supernet_arguments(parser, checkpoint="optional")
    parser.add_argument("--subnets", nargs="+", default=["levels"], metavar="NAME",
                        help="level names (L0, L1, ...), 'levels' (all of them), 'largest', 'smallest' "
                        "(default: %(default)s)")
    parser.add_argument("--resolutions", nargs="+", type=int, default=None, metavar="PX",
                        help="evaluate every subnet at each of these input sizes (default: its own)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="test: the test images; val: the "
                        "held-out training split; train: the training split without augmentation, to see how well "
                        "the supernet fits (default: %(default)s)")
    parser.add_argument("--max-images", type=int, default=None, help="a seeded random subset of the split")
    parser.add_argument("--n-calib", type=int, default=LIBRARY_N_CALIB,
                        help="BN calibration images from the training split (default: %(default)s)")
    parser.add_argument("--fit-heads", action="store_true",
                        help="score each subnet with its own classifier head fitted on the training split, as "
                        "`dynofa calibrate` makes the library's (default: the supernet's shared classifier)")
    add_tune_arguments(parser, "--fit-heads")
    parser.add_argument("--latency", nargs="*", default=[], metavar="PROFILE",
                        help="also time batch-1 latency under these CPU profiles (e.g. cpu-1t cpu-2t)")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per latency (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the records as JSON here")
    add_data_arguments(parser)


def named_subnets(names: Sequence[str], library: SubnetLibrary) -> list[tuple[str, SubnetArch]]:
    """``(name, arch)`` for level names, ``levels`` (all), ``largest`` and ``smallest``; ValueError otherwise."""
    extremes = {"largest": SubnetArch.largest(library.spec), "smallest": SubnetArch.smallest(library.spec)}
    chosen: list[tuple[str, SubnetArch]] = []
    for name in names:
        if name == "levels":
            chosen += [(lv.name, lv.arch) for lv in library.levels]
        elif name in extremes:
            chosen.append((name, extremes[name]))
        else:
            chosen.append((name, library.levels[library.index_of(name)].arch))
    return chosen


def run(args: argparse.Namespace) -> int:
    """``dynofa evaluate``: top-1 (BN recalibrated) of named subnets on a split, optionally latency; a table."""
    for p in args.latency:
        cpu_threads(p)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if any(r < 32 for r in args.resolutions or ()):
        raise ValueError(f"the network downsamples by 32: resolutions below 32 px are not supported, "
                         f"got {args.resolutions}")
    library = SubnetLibrary.load(args.library or default_library_path(), verify=args.checkpoint is None)
    supernet, spec = load_checkpoint(args, args.checkpoint or library.checkpoint_path, library.spec)
    tune = tune_config(args, args.fit_heads, "--fit-heads", max(spec.resolutions))
    subnets = [(f"{name}@{r}" if args.resolutions else name, replace(arch, resolution=r))
               for name, arch in named_subnets(args.subnets, library)
               for r in (args.resolutions or [arch.resolution])]
    untrained = sorted({a.resolution for _, a in subnets} - set(spec.resolutions))
    if untrained:
        print(f"note: {untrained} px are outside the trained resolutions {list(spec.resolutions)}")

    data = load_data(args, spec)
    split = stratified_split(data.train_y, val_size(args, len(data.train_y)), args.split_seed)
    if args.split == "test":
        pool_x, pool_y = data.test_x, data.test_y
    else:
        idx = split.val if args.split == "val" else split.train
        pool_x, pool_y = data.train_x[idx], data.train_y[idx]
    pick = subset(np.arange(len(pool_y)), args.max_images, args.split_seed)
    images, labels = pool_x[pick], pool_y[pick]
    calib = data.train_x[split.train]
    head_labels = data.train_y[split.train] if args.fit_heads else None

    if library.heads is not None and not args.fit_heads:
        print("note: the library's levels have their own classifier heads; these figures use the supernet's shared "
              "one (--fit-heads refits a head per subnet, as the library's were made)")
    n_calib = min(args.n_calib, len(calib))
    records = [{"name": name, "arch": arch.to_dict(), "split": args.split, "images": len(labels), "n_calib": n_calib,
                "heads": "fitted per subnet" if args.fit_heads else "shared",
                "bn_tuning": None if tune is None else tune.note(len(calib)),
                "top1": evaluate_arch(supernet, arch, images, labels, calib, spec, n_calib, head_labels=head_labels,
                                      tune=tune),
                **dict(zip(("macs", "params"), subnet_cost(supernet, arch), strict=True))}
               for name, arch in tqdm(subnets, desc=f"evaluate on {args.split}", unit="net")]
    for profile in args.latency:
        timings = measure_subnets(supernet, [a for _, a in subnets], cpu_threads(profile), repeats=args.repeats,
                                  rounds=min(5, args.repeats))
        for rec, t in zip(records, timings, strict=True):
            rec.setdefault("latency", {})[profile] = {"p50_s": t.p50_s, "p90_s": t.p90_s, "method": t.method}

    head = f"{'subnet':<14}{'px':>4}{'MMACs':>8}  top-1 ({args.split}, {len(labels)} images)"
    print(head + "".join(f"  {p} p50" for p in args.latency))
    for rec in records:
        cells = "".join(f"  {rec['latency'][p]['p50_s'] * 1e3:8.2f} ms" for p in args.latency)
        print(f"{rec['name']:<14}{rec['arch']['resolution']:>4}{rec['macs'] / 1e6:>8.1f}  {rec['top1'] * 100:6.2f} %"
              + cells)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint or library.checkpoint_path),
                                        "spec": spec.to_dict(), "processor": processor_name(), "records": records},
                                       indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
