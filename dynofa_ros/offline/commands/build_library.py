"""``dynofa build-library``: calibrate and fit heads (a family with batch norm), test and time the chosen levels;
write the library."""

from __future__ import annotations

import argparse
from pathlib import Path

from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import (
    add_data_arguments,
    add_heads_argument,
    add_supernet_arguments,
    add_timing_arguments,
    level_fit,
    level_images,
    load_checkpoint,
    load_data,
    split_of,
)
from dynofa_ros.offline.library_build import (
    LATENCY_NOISE,
    SIZE_LIMIT_BYTES,
    build_candidates,
    levels_of_library,
    levels_of_search,
    library_name,
    write_levels,
)
from dynofa_ros.offline.profile import cpu_threads
from dynofa_ros.supernet.family import family_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa build-library``."""
    add_supernet_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--search", type=Path, default=Path("runs/offline/search.json"),
                        help="`dynofa search` result whose Pareto front gives the levels (default: %(default)s)")
    source.add_argument("--levels-from", type=Path, metavar="LIBRARY",
                        help="library.json whose levels to rebuild with --checkpoint's weights instead (no search: "
                        "the same sub-networks, re-calibrated, re-tested, re-timed; other profiles' latency kept)")
    parser.add_argument("--out", type=Path, default=Path("runs/library"),
                        help="library folder: library.json, supernet.pt, and bn_stats.pt and heads.pt where the "
                        "levels have them (default: %(default)s)")
    parser.add_argument("--name", default=None, help="library name (default: <dataset>-ofa-mbv3-w<width>, "
                        "<dataset>-elastic-vit-e<embed width>-d<depth> with the largest sub-network's)")
    parser.add_argument("--levels", type=int, default=7,
                        help="levels to pick from the Pareto front, spread in latency (default: %(default)s)")
    add_timing_arguments(parser)
    parser.add_argument("--n-calib", type=int, default=None,
                        help=f"BN calibration images from the training split (default: {LIBRARY_N_CALIB}; a family "
                        "with batch norm only)")
    add_heads_argument(parser)
    parser.add_argument("--max-test-images", type=int,
                        help="evaluate on a seeded random N of the test images (quick runs)")
    parser.add_argument("--min-span", type=float, default=3.0,
                        help="warn when slowest/fastest level latency is below this (default: %(default)s)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Build, write and validate the library; print one line per level."""
    if args.levels < 2:
        raise ValueError(f"--levels must be >= 2, got {args.levels}")
    for p in args.profiles:
        cpu_threads(p)
    if args.levels_from and Path(args.out).resolve() == Path(args.levels_from).parent.resolve():
        raise ValueError(f"--out {args.out} is the folder of --levels-from: write the rebuilt library elsewhere, "
                         "compare, then copy it over")
    source = (levels_of_library(args.levels_from, args.profiles, args.backends) if args.levels_from
              else levels_of_search(args.search, args.levels))
    primary, backend = source.primary, source.backend
    if primary not in args.profiles:
        raise ValueError(f"the search ranked by {primary}; include it in --profiles")
    if backend not in args.backends:
        raise ValueError(f"the levels are ranked by their {backend} latency; include it in --backends")
    supernet, spec = load_checkpoint(args, spec=source.spec)
    if spec != source.spec:
        raise ValueError(f"{args.checkpoint}'s spec differs from the one of {args.levels_from or args.search}")
    tune = level_fit(args, spec)
    fit_options = {"--n-calib": args.n_calib, "--max-fit-images": args.max_fit_images}
    unused = [option for option, value in fit_options.items() if value is not None]
    if unused and not family_of(spec).bn_statistics:
        print(f"note: {spec.family} levels have no BN statistics to calibrate: {', '.join(unused)} not used")
    if args.n_calib is None:
        args.n_calib = LIBRARY_N_CALIB
    data = load_data(args, spec)
    images = level_images(args, data, split_of(args, data))

    built = build_candidates(supernet, spec, source, images, tune, args.profiles, args.warmup, args.repeats,
                             args.rounds, args.backends)
    name = args.name or library_name(data.name, spec)
    lib, dropped = write_levels(args.out, name, args.checkpoint, spec, built, primary, images.n_calib,
                                len(images.calib), tune, args.heads, len(images.test_y), data.name, backend)
    for lv in lib.levels:
        p = lv.latency_for(primary, backend)
        print(f"{lv.name}: top-1 {lv.top1 * 100:.2f} %  {primary} {backend} p50 {p.p50_s * 1e3:.2f} ms  "
              f"{lv.macs / 1e6:.1f} MMACs  r{lv.arch.resolution}")
    if dropped:
        print(f"dropped {dropped} level(s) not more accurate than one over {LATENCY_NOISE:.0%} faster "
              "(their figures: the 'built' lines above)")
    files = [args.out / "library.json", lib.checkpoint_path, lib.bn_stats_path, lib.heads_path]
    size = sum(f.stat().st_size for f in files if f is not None)
    span = lib.levels[-1].latency_for(primary, backend).p50_s / lib.levels[0].latency_for(primary, backend).p50_s
    print(f"wrote {args.out / 'library.json'}: {len(lib.levels)} levels, {primary} {backend} latency span {span:.2f}x, "
          f"{size / 2**20:.1f} MiB")
    if span < args.min_span:
        print(f"WARNING: the levels span only {span:.2f}x in {primary} {backend} latency (wanted >= {args.min_span}x)")
    if size > SIZE_LIMIT_BYTES:
        print(f"WARNING: the library files total {size / 2**20:.1f} MiB, over {SIZE_LIMIT_BYTES / 2**20:.0f} MiB")
    return 0
