#!/usr/bin/env python3
"""The offline pipeline on the paper's setting, scaled to this machine: the published w1.2 supernet at 224 px.

A randomly initialised ``ofa_mbv3_d234_e346_k357_w1.2`` supernet saved in the published layout
(``{'state_dict': ...}``) and a synthetic ImageFolder of mixed-size photos (``dynofa_ros.datasets.synthetic``)
go through ``dynofa pipeline --net ... --checkpoint ... --data ...`` with every stage at its defaults, in one
child process. Reported: each stage's wall time, the child's peak RSS (``ru_maxrss``), the library's levels,
and whether the perception runtime serves the library with the dataset's class names.
Goals: peak RSS <= 8 GB and <= 45 min in all on a 2-core machine; >= 5 levels asked for and built.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NET = "ofa_mbv3_d234_e346_k357_w1.2"
RSS_GOAL_GB = 8.0
WALL_GOAL_MIN = 45.0


def prepare(work: Path, classes: int, per_class: int) -> tuple[Path, Path]:
    """The published-layout random checkpoint and the synthetic 224-px dataset, in ``work``."""
    import torch

    from dynofa_ros.datasets.synthetic import write_synthetic_folder
    from dynofa_ros.supernet.spec import PUBLISHED_NETS, build_supernet

    torch.manual_seed(0)
    checkpoint = work / f"{NET}.pth"
    torch.save({"state_dict": build_supernet(PUBLISHED_NETS[NET]).state_dict()}, checkpoint)
    data = write_synthetic_folder(work / "data", classes=classes, train_per_class=per_class,
                                  test_per_class=max(1, per_class // 4), size=224)
    return checkpoint, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=5, help="synthetic classes (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=80, help="training images per class (default: "
                        "%(default)s; a quarter as many test images)")
    parser.add_argument("--levels", type=int, default=7, help="levels build-library picks (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="keep the run here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "pipeline.md",
                        help="Markdown fragment (default: %(default)s)")
    args = parser.parse_args(argv)
    from dynofa_ros.offline.timing import processor_name

    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()  # the pipeline runs with work as its folder
        work.mkdir(parents=True, exist_ok=True)
        checkpoint, data = prepare(work, args.classes, args.per_class)
        cmd = [sys.executable, "-m", "dynofa_ros.offline.cli", "pipeline", "--net", NET, "--checkpoint",
               str(checkpoint), "--data", str(data), "--cache-dir", str(work / "cache"), "--work", str(work / "run"),
               "--out", str(work / "library"), "--build-library-args", f"--levels {args.levels}"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        if proc.returncode:
            print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
            raise SystemExit(f"the pipeline failed (exit {proc.returncode})")
        stages = re.search(r"== stage wall times: (.*)", proc.stdout).group(1)
        levels = [line for line in proc.stdout.splitlines() if re.match(r"L\d+: top-1", line)]
        from dynofa_ros.supernet.runtime import DynamicNetwork

        net = DynamicNetwork.from_library(work / "library" / "library.json")
        names_ok = net.spec.class_names == tuple(f"class_{k}" for k in range(args.classes))
    checks = [(peak_gb <= RSS_GOAL_GB, f"peak RSS {peak_gb:.2f} GB <= {RSS_GOAL_GB:g} GB"),
              (wall / 60 <= WALL_GOAL_MIN, f"whole pipeline {wall / 60:.1f} min <= {WALL_GOAL_MIN:g} min"),
              (len(levels) >= 5, f"{len(levels)} levels built (>= 5; asked for {args.levels}, the build drops levels "
               "not more accurate than a faster one)"),
              (names_ok, "the perception runtime serves the library with the dataset's class names")]
    lines = [
        "## Offline pipeline at 224 px, published w1.2 layout (bench_pipeline.py)",
        "",
        f"- Machine: {processor_name()}, {os.cpu_count()} logical cores (shared: times are indicative); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Input: random-weight `{NET}` saved as `{{'state_dict': ...}}`; synthetic ImageFolder, {args.classes} "
        f"classes, {args.per_class} train + {max(1, args.per_class // 4)} val images per class, mixed sizes around "
        "224 px. Every stage at its defaults; `--levels " + str(args.levels) + "`.",
        f"- Command: `python benchmarks/bench_pipeline.py` (runs `dynofa pipeline --net {NET} --checkpoint ... "
        "--data ...`)",
        f"- Stage wall times: {stages}; total {wall / 60:.1f} min; peak RSS {peak_gb:.2f} GB",
        "- Levels (random weights with a fitted classifier: accuracies say nothing about the supernet):",
        "",
        *[f"  - {line}" for line in levels],
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks],
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
