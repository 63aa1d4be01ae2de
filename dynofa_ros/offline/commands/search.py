"""``dynofa search``: accuracy predictor + evolutionary search under a sweep of latency limits; Pareto front."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dynofa_ros.offline.commands.options import (
    add_data_arguments,
    add_supernet_arguments,
    load_checkpoint,
    load_data,
    split_of,
)
from dynofa_ros.offline.data import ImageRows, subset
from dynofa_ros.offline.profile import LatencyLUT
from dynofa_ros.offline.search import EvolutionConfig, Point, SearchConfig, load_gpu_results, search_subnets
from dynofa_ros.supernet.library import sha256_file
from dynofa_ros.supernet.serving import AUTO, ONNXRUNTIME, TORCH, resolve_backend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa search``."""
    d, e = SearchConfig(), EvolutionConfig()
    add_supernet_arguments(parser)
    parser.add_argument("--lut", type=Path, default=Path("runs/offline/profile/lut_cpu-1t.json"),
                        help="latency LUT file of the profile that defines the constraints, with the predictors "
                        "of the other backends (default: %(default)s)")
    parser.add_argument("--backend", choices=[AUTO, TORCH, ONNXRUNTIME], default=AUTO,
                        help="serving backend whose predicted latency the search constrains and which serves every "
                        "point to time it; auto: the perception node's on this machine (onnxruntime when it is "
                        "installed, else torch), or torch when --lut has no predictor of it (default: %(default)s)")
    parser.add_argument("--candidates", type=Path, help="GPU job results.json (subnets with val top-1); without "
                        "it, --random-candidates subnets are evaluated on the val split here")
    parser.add_argument("--random-candidates", type=int, default=d.random_candidates,
                        help="random subnets to evaluate on this machine when --candidates is absent "
                        "(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/offline/search.json"),
                        help="result file (default: %(default)s)")
    parser.add_argument("--constraints", type=int, default=d.constraints,
                        help="latency limits, geometric from the smallest to the largest subnet (default: %(default)s)")
    parser.add_argument("--population", type=int, default=e.population,
                        help="evolution population (default: %(default)s)")
    parser.add_argument("--generations", type=int, default=e.generations,
                        help="evolution generations (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="warm-up runs per latency measurement "
                        "(default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=d.repeats, help="timed runs per latency measurement of every "
                        "point (default: %(default)s)")
    parser.add_argument("--n-calib", type=int, default=d.n_calib, help="BN calibration images per evaluated subnet "
                        "(default: %(default)s)")
    parser.add_argument("--max-val-images", type=int, default=10_000,
                        help="evaluate each subnet on a seeded random N of the val images (default: %(default)s)")
    add_data_arguments(parser)


def search_backend(name: str, lut: LatencyLUT, path: Path) -> str:
    """The backend ``--backend name`` means with the LUT file ``path``: ``auto`` is the perception node's CPU
    backend, or torch (with a note) when the file has no predictor of it; ValueError, in one line naming the
    command that adds it, when the file has no predictor of an explicitly named one."""
    backend = resolve_backend(name, "cpu")
    if name == AUTO and backend not in lut.backends:
        print(f"note: {path} has no {backend} latency predictor: searching with {TORCH} latency")
        return TORCH
    try:
        lut.predictor(backend)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return backend


def run(args: argparse.Namespace) -> int:
    """Fit the predictor, sweep constraints, evaluate and measure every point, write the front."""
    supernet, spec = load_checkpoint(args)
    lut = LatencyLUT.load(args.lut)
    if lut.spec != spec:
        raise ValueError(f"LUT {args.lut} was built for another supernet spec than {args.checkpoint}'s")
    backend = search_backend(args.backend, lut, args.lut)
    candidates: list[Point] | None = None
    env: dict[str, Any] = {}
    if args.candidates:
        candidates, meta = load_gpu_results(args.candidates, spec, sha256_file(args.checkpoint))
        if meta["sha256"] is None:
            print(f"WARNING: {args.candidates} does not record which checkpoint it evaluated; its val accuracies "
                  f"are only right if that was {args.checkpoint}")
        env = meta["env"]
        if args.val_size is None:  # the candidates' validation split, unless asked otherwise
            args.val_size = meta["args"].get("val_size")
        for ours, theirs in (("val_size", "val_size"), ("split_seed", "seed")):
            if meta["args"].get(theirs, getattr(args, ours)) != getattr(args, ours):
                raise ValueError(f"{args.candidates} used {theirs}={meta['args'][theirs]} for its val split; pass "
                                 f"--{ours.replace('_', '-')} {meta['args'][theirs]} so both use the same images")
    data = load_data(args, spec)
    split = split_of(args, data)
    val_idx = subset(split.val, args.max_val_images, args.split_seed)
    config = SearchConfig(random_candidates=args.random_candidates, constraints=args.constraints,
                          evolution=EvolutionConfig(population=args.population, generations=args.generations),
                          seed=args.seed, warmup=args.warmup, repeats=args.repeats, n_calib=args.n_calib)
    out = search_subnets(supernet, spec, lut, (ImageRows(data.train_x, val_idx), data.train_y[val_idx]),
                         ImageRows(data.train_x, split.train), candidates, config, checkpoint=str(args.checkpoint),
                         lut_path=str(args.lut), gpu_env=env, backend=backend)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    predictor, points, front = out["predictor"], out["points"], out["front"]
    print(f"accuracy predictor: held-out RMSE {predictor['rmse'] * 100:.2f} pp, Spearman {predictor['spearman']:.3f} "
          f"(n_train={predictor['n_train']}, n_test={predictor['n_test']}, ridge alpha {predictor['alpha']})")
    n_new = sum(p["source"] == "search" for p in points)
    print(f"{len(points)} subnets ({n_new} new from search), Pareto front of {len(front)} ({backend}): "
          + ", ".join(f"{points[i]['cpu']['p50_s'] * 1e3:.1f} ms/{points[i]['val_top1'] * 100:.1f} %" for i in front))
    print(f"{backend} latency prediction error on these subnets: MAPE "
          f"{out['lut']['error_on_points']['mape'] * 100:.1f} %; wrote {args.out}")
    return 0
