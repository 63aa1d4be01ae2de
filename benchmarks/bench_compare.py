"""Dynamic-OFA vs a width-only dynamic network and static networks (a wrapper over `experiments.compare`).

Runs the comparison (top-1 on the test images, batch-1 latency at 1 and 2 CPU threads, plus GPU latency
merged from the baseline GPU job's ``compare_gpu.json``) and writes a Markdown fragment (default
docs/bench/compare.md) with the table, the front comparisons and the goal verdicts: Dynamic-OFA's front
dominates the width-only front, and reaches >= ``--goal-speedup`` x speedup at equal top-1.

``--tiny`` demonstrates the tooling only: a random-weight library and baselines trained for one epoch on
a few images, evaluated on a few test images. Its numbers mean nothing and are labelled so.

``--latency-only`` needs no trained baseline: latency does not depend on weight values, so it times our
library's levels against untrained width-only levels and static networks (interleaved, same machine) and
bounds the speedup any training could give: at equal top-1 inside the overlap, their latency / ours is at
most (slowest width-only level) / (fastest level of ours). Goal: that bound reaches ``--goal-speedup``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynofa_ros.datasets.image_dataset import load_dataset  # noqa: E402
from dynofa_ros.offline.commands.options import add_source_arguments  # noqa: E402
from dynofa_ros.supernet.library import default_library_path  # noqa: E402
from dynofa_ros.supernet.synthetic import random_library  # noqa: E402
from experiments import baseline_gpu_job  # noqa: E402
from experiments.compare import (  # noqa: E402
    OURS,
    baseline_levels,
    library_levels,
    markdown,
    measure,
    plot,
    run_comparison,
)
from experiments.slimmable import BaselineConfig, SlimmableNet, save_baseline  # noqa: E402
from experiments.static_refs import static_configs  # noqa: E402


def tiny_inputs(work: Path, data: Path | None, cache_dir: Path | None) -> tuple[Path, list[Path]]:
    """Random-weight 4-level library + width-only and two static baselines trained 1 epoch on 64 images (CPU)."""
    library = random_library(work / "library", n_levels=4).base_dir / "library.json"
    common = ["--device", "cpu", "--epochs", "1", "--batch-size", "32", "--max-train-images", "64",
              "--resolutions", "32", "--eval-every", "0", "--n-calib", "64", "--eval-limit", "100",
              "--library", str(library), "--compare-repeats", "3", "--compare-warmup", "1", "--compare-rounds", "1",
              *(["--data", str(data)] if data else []), *(["--cache-dir", str(cache_dir)] if cache_dir else [])]
    jobs = {"width-only": ["--approach", "width-only"],
            "static": ["--approach", "static", "--static-refs", "mbv3-large-0.5", "mbv3-small-1.0"]}
    for name, job_args in jobs.items():
        if baseline_gpu_job.main([*job_args, "--out", str(work / name), *common]) != 0:
            raise RuntimeError(f"the tiny {name} baseline job failed; see {work / name / 'job.log'}")
    return library, sorted((work / "width-only").glob("*.pt")) + sorted((work / "static").glob("*.pt"))


def latency_only(library: Path, work: Path, goal_speedup: float, repeats: int) -> tuple[list[str], list]:
    """Markdown lines and goal verdicts of the weight-independent latency comparison (see module docstring)."""
    torch.manual_seed(0)
    work.mkdir(parents=True, exist_ok=True)
    paths = [save_baseline(work / "us-mbv3-large.pt", SlimmableNet(BaselineConfig()), "us-mbv3-large")]
    paths += [save_baseline(work / f"{n}.pt", SlimmableNet(c), n) for n, c in static_configs().items()]
    noise = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)  # BN statistics do not change latency
    levels = library_levels(library) + [lv for p in paths for lv in baseline_levels(p, noise, len(noise))]
    profiles = ["cpu-1t", "cpu-2t"]
    p50 = {prof: [r["p50_s"] for r in measure(levels, prof, 20, repeats, 5)] for prof in profiles}
    lines = ["| approach | level | res | " + " | ".join(f"{p} p50 ms" for p in profiles) + " |",
             "|---|---|---|" + "---|" * len(profiles)]
    lines += [f"| {lv.approach} | {lv.name} | {lv.resolution} | "
              + " | ".join(f"{p50[p][i] * 1e3:.2f}" for p in profiles) + " |" for i, lv in enumerate(levels)]
    verdicts = []
    for prof in profiles:
        ours = [t for t, lv in zip(p50[prof], levels, strict=True) if lv.approach == OURS]
        width = [t for t, lv in zip(p50[prof], levels, strict=True) if lv.approach == "width-only"]
        bound = max(width) / min(ours)
        verdicts.append((f"{prof}: speedup at equal top-1 vs width-only can reach {goal_speedup:g}x at all (bound "
                         f"{bound:.2f}x = slowest width-only level {max(width) * 1e3:.2f} ms / fastest level of "
                         f"ours {min(ours) * 1e3:.2f} ms; width-only span {max(width) / min(width):.2f}x, ours "
                         f"{max(ours) / min(ours):.2f}x)", bound >= goal_speedup))
    return lines, verdicts


def goals(result: dict, goal_speedup: float) -> list[tuple[str, bool]]:
    """Per measured profile: ours dominates the width-only front; max speedup at equal top-1 >= goal."""
    out = []
    for c in result["comparisons"]:
        if c["other"] != "width-only":
            continue
        beaten, n = c["dominated"]
        out.append((f"{c['profile']}: Dynamic-OFA front dominates the width-only front ({beaten}/{n} of its front "
                    "points beaten by a level of ours)", beaten == n))
        s = c["speedup_summary"]
        text = "no top-1 overlap" if s is None else f"max {s['max']:.2f}x, median {s['median']:.2f}x"
        out.append((f"{c['profile']}: speedup at equal top-1 vs width-only >= {goal_speedup:g}x ({text})",
                    s is not None and s["max"] >= goal_speedup))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, help="our library.json (default: the shipped one)")
    parser.add_argument("--baselines", type=Path, nargs="*", default=[], help="baseline checkpoints (.pt)")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="compare_gpu.json of the baseline GPU job")
    parser.add_argument("--tiny", action="store_true", help="tooling demonstration at tiny scale (see above)")
    parser.add_argument("--latency-only", action="store_true",
                        help="our library vs untrained baselines, latency only: the reachable speedup (see above)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_compare", help="work folder")
    add_source_arguments(parser)
    parser.add_argument("--max-test-images", type=int, help="test images (default: all; --tiny: 500)")
    parser.add_argument("--repeats", type=int, default=100, help="timed runs per network and profile")
    parser.add_argument("--goal-speedup", type=float, default=2.0)
    parser.add_argument("--output", type=Path, help="Markdown fragment (default: docs/bench/compare.md; "
                        "--latency-only: docs/bench/compare_latency.md)")
    args = parser.parse_args(argv)
    args.output = args.output or REPO / "docs" / "bench" / f"compare{'_latency' if args.latency_only else ''}.md"
    args.work.mkdir(parents=True, exist_ok=True)
    stamp = (f"- Date {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; machine shared with other jobs (latency "
             f"noisy); torch {torch.__version__}")
    if args.latency_only:
        library = args.library or default_library_path()
        lines, verdicts = latency_only(library, args.work / "untrained", args.goal_speedup, args.repeats)
        text = "\n".join([
            "## Dynamic-OFA vs width-only vs static: latency only (bench_compare.py --latency-only)", "",
            f"- Our library `{library}` against untrained baselines (latency does not depend on weight values); "
            "batch 1, fp32, all networks timed interleaved, 20 warm-up, median of "
            f"{args.repeats} in 5 passes; no accuracy here.", stamp, "", *lines, "", "Goals:", "",
            *[f"- {'PASS' if ok else 'FAIL'}: {t}" for t, ok in verdicts], ""])
        print(text)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
        return 0 if all(ok for _, ok in verdicts) else 1
    if args.tiny:
        library, baselines = tiny_inputs(args.work / "tiny", args.data, args.cache_dir)
        test_images, warmup, repeats, rounds = args.max_test_images or 500, 3, min(args.repeats, 20), 2
    else:
        if not args.baselines:
            parser.error("give --baselines (checkpoints of the baseline GPU job) or --tiny")
        library, baselines = args.library or default_library_path(), args.baselines
        test_images, warmup, repeats, rounds = args.max_test_images, 20, args.repeats, 5
    data = load_dataset(args.data, args.cache_dir)
    result = run_comparison(library, baselines, ["cpu-1t", "cpu-2t"], data, max_test_images=test_images,
                            warmup=warmup, repeats=repeats, rounds=rounds, merge=args.merge)
    (args.work / "compare.json").write_text(json.dumps(result, indent=1))
    plot(result, args.work / "compare.png")
    verdicts = goals(result, args.goal_speedup)
    banner = ("**TOOLING DEMONSTRATION ONLY (`--tiny`)**: random-weight library, baselines trained 1 epoch on 64 "
              "images, top-1 on a few test images. These numbers are not the comparison result." if args.tiny
              else "Trained networks; see docs/comparison.md for budgets and reading.")
    text = "\n".join([
        "## Dynamic-OFA vs width-only vs static (bench_compare.py)", "",
        f"- {banner}",
        f"{stamp}; approaches: {', '.join(dict.fromkeys(p['approach'] for p in result['points']))} (ours = {OURS})",
        "",
        markdown(result),
        "Goals:", "",
        *[f"- {'PASS' if ok else 'FAIL'}: {t}" for t, ok in verdicts], "",
    ])
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} (plot: {args.work / 'compare.png'})")
    return 0 if verdicts and (args.tiny or all(ok for _, ok in verdicts)) else 1


if __name__ == "__main__":
    sys.exit(main())
