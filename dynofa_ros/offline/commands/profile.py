"""``dynofa profile``: build CPU latency predictors per serving backend (ofa_mbv3 with torch: a per-layer LUT; else a
linear model on the family's architecture features) and report their error on held-out measured subnets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch import nn

from dynofa_ros.offline.commands.options import (
    add_backends_argument,
    add_supernet_arguments,
    load_checkpoint,
    spec_for,
)
from dynofa_ros.offline.profile import CPU_PROFILES, cpu_threads, profile_luts
from dynofa_ros.supernet.family import Spec, family_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa profile``."""
    add_supernet_arguments(parser, checkpoint="optional")
    parser.add_argument("--out", type=Path, default=Path("runs/offline/profile"),
                        help="output folder for lut_<profile>.json (every backend's predictor) and "
                        "profile_report.json (default: %(default)s)")
    parser.add_argument("--profiles", nargs="+", default=list(CPU_PROFILES), metavar="PROFILE",
                        help="CPU profiles cpu-<threads>t (default: %(default)s)")
    add_backends_argument(parser, "to fit a latency predictor of, each on subnets it serves",
                          "torch: always profiled, by a per-layer LUT (ofa_mbv3) or as onnxruntime; onnxruntime: a "
                          "linear model on architecture features (needs --fit >= 3)")
    parser.add_argument("--resolutions", type=int, nargs="+", help="restrict to these input resolutions "
                        "(default: all of the spec's)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up runs per measurement (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=50,
                        help="timed runs per LUT layer and per directly measured subnet (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved passes over all layers and subnets "
                        "the repeats are split into (default: %(default)s)")
    parser.add_argument("--fit", type=int, default=20,
                        help="random subnets each backend serves to fit its predictor (plus smallest and largest; "
                        "default: %(default)s)")
    parser.add_argument("--holdout", type=int, default=20,
                        help="other random subnets each backend serves, on which its predictor's error is "
                        "reported (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")


def _load_spec(args: argparse.Namespace) -> tuple[Spec, nn.Module]:
    """The checkpoint's supernet, or without one random weights for the requested spec (latency does not depend
    on the weights)."""
    if args.checkpoint is None:
        spec = spec_for(args)
        return spec, family_of(spec).build(spec).eval()
    supernet, spec = load_checkpoint(args)
    return spec, supernet.eval()


def run(args: argparse.Namespace) -> int:
    """Build and validate one LUT per profile with the other backends' predictors; write them and an error report
    to ``args.out``."""
    for p in args.profiles:
        cpu_threads(p)
    spec, supernet = _load_spec(args)
    for r in args.resolutions or ():
        if r not in spec.resolutions:
            raise ValueError(f"--resolutions {r} is not one of the spec's {list(spec.resolutions)}")
    result = profile_luts(supernet, spec, args.profiles, args.resolutions or (), warmup=args.warmup,
                          repeats=args.repeats, rounds=args.rounds, n_fit=args.fit, n_holdout=args.holdout,
                          seed=args.seed, backends=args.backends)
    args.out.mkdir(parents=True, exist_ok=True)
    for lut in result.luts:
        lut.save(args.out / f"lut_{lut.profile}.json")
        table = (f"{len(lut.entries)} layers, overhead {lut.overhead_s * 1e3:.2f} ms" if lut.entries
                 else "no per-layer table")
        print(f"{lut.profile}: {table}")
        for backend, rep in result.report["profiles"][lut.profile]["backends"].items():
            err = rep["error"]
            print(f"  {backend} ({rep['predictor']}): {rep['error_on']} MAPE {err['mape'] * 100:.1f} % "
                  f"(max {err['max_ape'] * 100:.1f} %, n={int(err['n'])})")
    (args.out / "profile_report.json").write_text(json.dumps(result.report, indent=1))
    return 0
