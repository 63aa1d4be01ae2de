"""``dynofa adapt``: give a supernet the dataset's classes and write it as our checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynofa_ros.offline.adapt import adapt_to_dataset
from dynofa_ros.offline.commands.options import (
    add_data_arguments,
    add_supernet_arguments,
    load_checkpoint,
    load_data,
    requested_spec,
    split_of,
)
from dynofa_ros.offline.data import ImageRows, subset
from dynofa_ros.offline.evaluate import evaluate_arch
from dynofa_ros.supernet.arch import SubnetArch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa adapt``."""
    add_supernet_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/offline/supernet.pt"),
                        help="the adapted checkpoint (default: %(default)s)")
    parser.add_argument("--max-fit-images", type=int, default=10_000,
                        help="training images the new classifier is fitted on, a seeded class-stratified subset "
                        "(default: %(default)s)")
    parser.add_argument("--n-calib", type=int, default=2000,
                        help="BN calibration images for the largest subnet's features (default: %(default)s)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """``dynofa adapt``: write the supernet with the dataset's classes as our checkpoint (nothing when the checkpoint
    is ours and already has them)."""
    from dynofa_ros.supernet.checkpoint import save_supernet

    supernet, spec = load_checkpoint(args)
    data = load_data(args, spec)
    split = split_of(args, data)
    fit = subset(split.train, args.max_fit_images, args.split_seed)
    adapted = adapt_to_dataset(supernet, spec, data.class_names, ImageRows(data.train_x, fit), data.train_y[fit],
                               args.n_calib)
    if adapted.spec == spec and requested_spec(args) is None:
        print(f"{args.checkpoint} already fits the dataset's {len(data.class_names)} classes; nothing written")
        return 0
    save_supernet(args.out, adapted.supernet, adapted.spec)
    what = (f"a new {adapted.spec.num_classes}-class classifier fitted on {adapted.n_fit} images (was "
            f"{spec.num_classes} classes)" if adapted.classifier else "the dataset's class names")
    print(f"wrote {args.out}: the supernet with {what}")
    if adapted.classifier:
        val = subset(split.val, 2000, args.split_seed)
        acc = evaluate_arch(adapted.supernet, SubnetArch.largest(adapted.spec), ImageRows(data.train_x, val),
                            data.train_y[val], ImageRows(data.train_x, fit), adapted.spec, min(args.n_calib, len(fit)))
        print(f"largest subnet, BN recalibrated: validation top-1 {acc * 100:.2f} % on {len(val)} images")
    return 0
