"""``dynofa evaluate``: evaluate sub-networks (BN recalibrated, for a family with batch norm) on a split, optionally
with their latency."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import (
    add_data_arguments,
    add_supernet_arguments,
    add_tune_arguments,
    load_checkpoint,
    load_data,
    split_of,
    tune_config,
)
from dynofa_ros.offline.data import ImageRows, subset
from dynofa_ros.offline.evaluate import check_level_fit, evaluate_subnets
from dynofa_ros.offline.profile import cpu_threads
from dynofa_ros.offline.timing import processor_name
from dynofa_ros.supernet.family import OFA_MBV3, Arch, Spec, family_of
from dynofa_ros.supernet.library import SubnetLibrary, library_path

SPLITS = ("test", "val", "train")
EXTREMES = ("largest", "smallest")
# the smallest input a family's networks take, where its own arch check does not bound it (ofa_mbv3 downsamples by 32)
MIN_RESOLUTION: dict[str, int] = {OFA_MBV3.name: 32}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa evaluate``."""
    parser.add_argument("--library", type=Path, default=None, help="library whose levels name the subnets "
                        "(a library.json, or a shipped model: mbv3, vit; default mbv3; not read for --checkpoint "
                        "with only largest/smallest)")
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


def named_subnets(names: Sequence[str], spec: Spec, library: SubnetLibrary | None) -> list[tuple[str, Arch]]:
    """``(name, arch)`` for ``largest`` and ``smallest`` (of ``spec``) and for the ``library``'s level names and
    ``levels`` (all of them); ValueError for other names."""
    family = family_of(spec)
    extremes = {"largest": family.largest(spec), "smallest": family.smallest(spec)}
    chosen: list[tuple[str, Arch]] = []
    for name in names:
        if name in extremes:
            chosen.append((name, extremes[name]))
        elif name == "levels":
            chosen += [(lv.name, lv.arch) for lv in library.levels]
        else:
            chosen.append((name, library.levels[library.index_of(name)].arch))
    return chosen


def run(args: argparse.Namespace) -> int:
    """``dynofa evaluate``: top-1 (BN recalibrated where the family has BN) of named subnets on a split, optionally
    latency; a table. A library is read when it names subnets or holds the checkpoint."""
    for p in args.latency:
        cpu_threads(p)
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    library = None
    if args.library is not None or args.checkpoint is None or set(args.subnets) - set(EXTREMES):
        library = SubnetLibrary.load(library_path(args.library or ""), verify=args.checkpoint is None)
    supernet, spec = load_checkpoint(args, args.checkpoint or library.checkpoint_path,
                                     library.spec if library is not None else None)
    low = MIN_RESOLUTION.get(spec.family, 1)
    if any(r < low for r in args.resolutions or ()):
        raise ValueError(f"{spec.family} networks downsample by {low}: resolutions below {low} px are not supported, "
                         f"got {args.resolutions}")
    check_level_fit(spec, args.fit_heads)
    tune = tune_config(args, args.fit_heads, "--fit-heads", max(spec.resolutions))
    subnets = [(f"{name}@{r}" if args.resolutions else name, replace(arch, resolution=r))
               for name, arch in named_subnets(args.subnets, spec, library)
               for r in (args.resolutions or [arch.resolution])]
    for _, arch in subnets:  # an arch the supernet cannot run fails here, before the data is read
        family_of(spec).apply(supernet, arch)
    untrained = sorted({a.resolution for _, a in subnets} - set(spec.resolutions))
    if untrained:
        print(f"note: {untrained} px are outside the trained resolutions {list(spec.resolutions)}")

    data = load_data(args, spec)
    split = split_of(args, data)
    if args.split == "test":
        pool_x, pool_y, idx = data.test_x, data.test_y, np.arange(len(data.test_y))
    else:
        pool_x, pool_y, idx = data.train_x, data.train_y, split.val if args.split == "val" else split.train
    pick = subset(idx, args.max_images, args.split_seed)
    images, labels = ImageRows(pool_x, pick), pool_y[pick]
    calib = ImageRows(data.train_x, split.train)
    head_labels = data.train_y[split.train] if args.fit_heads else None

    if library is not None and library.heads is not None and not args.fit_heads:
        print("note: the library's levels have their own classifier heads; these figures use the supernet's shared "
              "one (--fit-heads refits a head per subnet, as the library's were made)")
    records = evaluate_subnets(supernet, spec, subnets, images, labels, calib, args.n_calib, args.split, head_labels,
                               tune, args.latency, args.repeats)

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
