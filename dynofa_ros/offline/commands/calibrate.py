"""``dynofa calibrate``: recalibrate a library's levels (BN statistics, heads) and re-test their top-1."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import (
    add_data_arguments,
    add_heads_argument,
    level_fit,
    level_images,
    load_data,
    split_of,
)
from dynofa_ros.offline.data import ImageRows
from dynofa_ros.offline.heads import head_note
from dynofa_ros.offline.library_build import calibration_note, eval_set_note
from dynofa_ros.offline.recalibrate import recalibrate_levels
from dynofa_ros.supernet.bn import save_bn_stats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.family import family_of
from dynofa_ros.supernet.library import FileRef, SubnetLibrary, sha256_file
from dynofa_ros.supernet.library_write import save_heads_ref


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa calibrate``."""
    parser.add_argument("--library", type=Path, required=True, help="library.json whose levels to recalibrate")
    parser.add_argument("--n-calib", type=int, default=LIBRARY_N_CALIB,
                        help="calibration images from the training split (default: %(default)s)")
    add_heads_argument(parser)
    parser.add_argument("--max-test-images", type=int,
                        help="re-test on a seeded random N of the test images (quick runs; default: all)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Recalibrate, refit and re-test every level; rewrite bn_stats.pt, heads.pt and library.json."""
    lib = SubnetLibrary.load(args.library)
    if not family_of(lib.spec).bn_statistics:
        raise ValueError(f"{args.library}: {lib.spec.family} levels have no BN statistics or heads to recalibrate "
                         "(`dynofa build-library --levels-from` re-tests and re-times them)")
    supernet, spec = load_supernet(lib.checkpoint_path, lib.spec)
    tune = level_fit(args, spec)
    data = load_data(args, spec)
    split = split_of(args, data)
    images = level_images(args, data, split)
    fits = recalibrate_levels(supernet, spec, lib.levels, images, tune,
                              (ImageRows(data.train_x, split.val), data.train_y[split.val]))
    n_calib, n_test = images.n_calib, len(images.test_y)
    levels = [replace(lv, top1=fit.top1) for lv, fit in zip(lib.levels, fits, strict=True)]
    save_bn_stats(lib.bn_stats_path, [fit.stats for fit in fits])
    lib.bn_stats = FileRef(lib.bn_stats.path, sha256_file(lib.bn_stats_path))
    lib.calibration = calibration_note(n_calib, tune, len(images.calib), data.name)
    lib.eval_set = eval_set_note(n_test, data.name)
    old_heads = lib.heads_path
    if args.heads:
        lib.heads = save_heads_ref(lib.base_dir, [fit.head for fit in fits])
        lib.heads_fit = head_note(len(images.calib), bn_tuned=tune is not None, dataset=data.name)
    else:
        lib.heads, lib.heads_fit = None, ""
    before, lib.levels = lib.levels, levels
    lib.save(args.library)
    if old_heads is not None and lib.heads_path != old_heads:
        old_heads.unlink(missing_ok=True)  # no longer referenced by the library
    for old, lv, fit in zip(before, levels, fits, strict=True):
        was = "n/a" if old.top1 is None else f"{old.top1 * 100:.2f} %"
        print(f"{lv.name}: test top-1 {was} -> {lv.top1 * 100:.2f} %  (validation split {fit.val_top1 * 100:.2f} %)")
    heads = f" and fitted their heads on {len(images.calib)} images (x2 mirrored)" if args.heads else ""
    if tune is not None:
        heads = f", trained their BN scale/shift ({tune.epochs:g} epochs){heads}"
    print(f"recalibrated {len(fits)} levels on {n_calib} images{heads}, tested on {n_test}; wrote {args.library}, "
          f"{lib.bn_stats_path}" + (f", {lib.heads_path}" if lib.heads_path else ""))
    if n_test < len(data.test_y):
        print(f"note: the recorded top-1 is now on {n_test} of the {len(data.test_y)} test images "
              "(--max-test-images)")
    top = [lv.top1 for lv in levels]
    if any(b <= a for a, b in zip(top, top[1:])):
        print("WARNING: test top-1 no longer rises with the level: rebuild the library (dynofa build-library "
              "--levels-from) to drop the levels that are not more accurate than a faster one")
    return 0
