"""``dynofa``: the offline stage of Dynamic-OFA as one command-line tool.

Typical use, after training (``dynofa train`` or the GPU job) produced a checkpoint::

    dynofa pipeline --checkpoint runs/gpu/supernet.pt --candidates runs/gpu/results.json

which runs ``profile`` (latency LUTs) -> ``search`` (predictor + evolutionary search, val accuracy and
CPU latency of every point, Pareto front) -> ``build-library`` (per-level BN calibration and classifier head,
test top-1, re-measured latency, library files) -> ``plot``. Each stage is also a sub-command of its own.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Command:
    """One sub-command: where its ``add_arguments``/``run`` live, and one line of help."""

    name: str
    module: str
    help: str

    def functions(self) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
        """``(add_arguments, run)`` of the sub-command."""
        if self.module == __name__:
            return globals()[f"_{self.name}_arguments"], globals()[f"_{self.name}_run"]
        mod = importlib.import_module(self.module)
        return mod.add_arguments, mod.run


COMMANDS = (
    Command("data", "dynofa_ros.offline.data", "decode the CIFAR-10 tarball into the data cache"),
    Command("train", "dynofa_ros.offline.train", "train the supernet (sandwich rule, in-place distillation)"),
    Command("evaluate", "dynofa_ros.offline.evaluate", "evaluate sub-networks (BN recalibrated) on a split"),
    Command("calibrate", __name__, "recalibrate the BN statistics of a library's levels (bn_stats.pt), refit their "
            "classifier heads (heads.pt) and re-test their top-1 (library.json)"),
    Command("profile", "dynofa_ros.offline.profile",
            "build per-layer CPU latency LUTs and report their error against measured subnets"),
    Command("search", "dynofa_ros.offline.search",
            "accuracy predictor + evolutionary search under a sweep of latency limits; Pareto front"),
    Command("build-library", "dynofa_ros.offline.library_build",
            "calibrate, fit heads, test and re-measure the chosen levels; write library.json, supernet.pt, "
            "bn_stats.pt, heads.pt"),
    Command("measure", "dynofa_ros.offline.measure",
            "re-measure a library's levels on this machine and update their CPU latency records"),
    Command("plot", "dynofa_ros.offline.plots", "plot val accuracy vs CPU latency, the Pareto front and the levels"),
    Command("compare", "dynofa_ros.offline.compare",
            "compare the library's levels with width-only and static baselines: top-1, latency, fronts"),
    Command("pipeline", __name__, "run profile -> search -> build-library -> plot from a trained checkpoint"),
)


# ------------------------------------------------------------------------------------------ calibrate


def _calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
    from dynofa_ros.offline.library_build import add_heads_argument
    from dynofa_ros.offline.search import add_data_arguments

    parser.add_argument("--library", type=Path, required=True, help="library.json whose levels to recalibrate")
    parser.add_argument("--n-calib", type=int, default=LIBRARY_N_CALIB,
                        help="calibration images from the training split (default: %(default)s)")
    add_heads_argument(parser)
    parser.add_argument("--max-test-images", type=int,
                        help="re-test on a seeded random N of the test images (quick runs; default: all)")
    add_data_arguments(parser)


def _calibrate_run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from dynofa_ros.datasets.cifar10 import load_cifar10
    from dynofa_ros.offline.bn_tuning import tune_config
    from dynofa_ros.offline.data import stratified_split, subset
    from dynofa_ros.offline.heads import head_note
    from dynofa_ros.offline.library_build import calibrate_and_test, calibration_note, eval_set_note
    from dynofa_ros.supernet.bn import save_bn_stats
    from dynofa_ros.supernet.checkpoint import load_supernet
    from dynofa_ros.supernet.library import FileRef, SubnetLibrary, save_heads_ref, sha256_file

    tune = tune_config(args, args.heads, "--heads")
    lib = SubnetLibrary.load(args.library)
    supernet, spec = load_supernet(lib.checkpoint_path, lib.spec)
    data = load_cifar10(args.data, args.cache_dir)
    split = stratified_split(data.train_y, args.val_size, args.split_seed)
    train = split.train
    calib = data.train_x[train]
    calib_y = data.train_y[train] if args.heads else None  # head fitting labels
    test_idx = subset(np.arange(len(data.test_y)), args.max_test_images, args.split_seed)
    test_x, test_y = data.test_x[test_idx], data.test_y[test_idx]
    n = min(args.n_calib, len(calib))
    val = (data.train_x[split.val], data.train_y[split.val])
    fits = [calibrate_and_test(supernet, lv.arch, calib, n, test_x, test_y, spec, calib_y, tune, val)
            for lv in tqdm(lib.levels, desc="calibrate + test levels", unit="level")]
    levels = [replace(lv, top1=fit.top1) for lv, fit in zip(lib.levels, fits, strict=True)]
    save_bn_stats(lib.bn_stats_path, [fit.stats for fit in fits])
    lib.bn_stats = FileRef(lib.bn_stats.path, sha256_file(lib.bn_stats_path))
    lib.calibration, lib.eval_set = calibration_note(n, tune, len(calib)), eval_set_note(len(test_y))
    old_heads = lib.heads_path
    if args.heads:
        lib.heads = save_heads_ref(lib.base_dir, [fit.head for fit in fits])
        lib.heads_fit = head_note(len(calib), bn_tuned=tune is not None)
    else:
        lib.heads, lib.heads_fit = None, ""
    before, lib.levels = lib.levels, levels
    lib.save(args.library)
    if old_heads is not None and lib.heads_path != old_heads:
        old_heads.unlink(missing_ok=True)  # no longer referenced by the library
    for old, lv, fit in zip(before, levels, fits, strict=True):
        was = "n/a" if old.top1 is None else f"{old.top1 * 100:.2f} %"
        print(f"{lv.name}: test top-1 {was} -> {lv.top1 * 100:.2f} %  (validation split {fit.val_top1 * 100:.2f} %)")
    heads = f" and fitted their heads on {len(calib)} images (x2 mirrored)" if args.heads else ""
    if tune is not None:
        heads = f", trained their BN scale/shift ({tune.epochs:g} epochs){heads}"
    print(f"recalibrated {len(fits)} levels on {n} images{heads}, tested on {len(test_y)}; wrote {args.library}, "
          f"{lib.bn_stats_path}" + (f", {lib.heads_path}" if lib.heads_path else ""))
    if len(test_y) < len(data.test_y):
        print(f"note: the recorded top-1 is now on {len(test_y)} of the {len(data.test_y)} test images "
              "(--max-test-images)")
    top = [lv.top1 for lv in levels]
    if any(b <= a for a, b in zip(top, top[1:])):
        print("WARNING: test top-1 no longer rises with the level: rebuild the library (dynofa build-library "
              "--levels-from) to drop the levels that are not more accurate than a faster one")
    return 0


# ------------------------------------------------------------------------------------------- pipeline


def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    from dynofa_ros.offline.data import add_source_arguments

    parser.add_argument("--checkpoint", type=Path, required=True, help="trained supernet checkpoint")
    parser.add_argument("--candidates", type=Path, help="GPU job results.json (subnets with val top-1, GPU "
                        "latency); without it the search evaluates random subnets on this machine")
    parser.add_argument("--work", type=Path, default=Path("runs/offline"),
                        help="folder for LUTs and search results (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("models/cifar10_mbv3"),
                        help="library folder (default: %(default)s)")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/pareto.png"), help="PNG (default: %(default)s)")
    parser.add_argument("--profile", default="cpu-1t", help="CPU profile whose LUT defines the search's latency "
                        "limits and the level order (default: %(default)s)")
    add_source_arguments(parser)
    for stage in ("profile", "search", "build-library", "plot"):
        parser.add_argument(f"--{stage}-args", default="", metavar="ARGS",
                            help=f"extra options for the {stage} stage, one quoted string (see `dynofa {stage} -h`)")


def _pipeline_run(args: argparse.Namespace) -> int:
    data = [*(["--data", str(args.data)] if args.data else []),
            *(["--cache-dir", str(args.cache_dir)] if args.cache_dir else [])]
    lut = args.work / "profile" / f"lut_{args.profile}.json"
    search = args.work / "search.json"
    stages = {
        "profile": ["--checkpoint", str(args.checkpoint), "--out", str(args.work / "profile")],
        "search": ["--checkpoint", str(args.checkpoint), "--lut", str(lut), "--out", str(search), *data,
                   *(["--candidates", str(args.candidates)] if args.candidates else [])],
        "build-library": ["--checkpoint", str(args.checkpoint), "--search", str(search), "--out", str(args.out),
                          *data],
        "plot": ["--search", str(search), "--library", str(args.out / "library.json"), "--out", str(args.plot)],
    }
    parser = build_parser()
    for stage, argv in stages.items():
        extra = shlex.split(getattr(args, f"{stage.replace('-', '_')}_args"))
        print(f"== dynofa {stage} {shlex.join(argv + extra)}", flush=True)
        sub = parser.parse_args([stage, *argv, *extra])
        rc = sub.func(sub)
        if rc:
            print(f"== {stage} failed (exit {rc}); stopping", file=sys.stderr)
            return rc
    return 0


# --------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The ``dynofa`` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="dynofa", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS:
        add_arguments, run = cmd.functions()
        sub = subs.add_parser(cmd.name, help=cmd.help, description=cmd.help[0].upper() + cmd.help[1:] + ".")
        add_arguments(sub)
        sub.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the sub-command; problems with the inputs exit 2 with one clear line."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"dynofa {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
