#!/usr/bin/env python3
"""The offline pipeline on the paper's setting, scaled to this machine: the published w1.2 supernet at 224 px.

A randomly initialised ``ofa_mbv3_d234_e346_k357_w1.2`` supernet saved in the published layout
(``{'state_dict': ...}``) and a synthetic ImageFolder of mixed-size photos (``dynofa_ros.datasets.synthetic``)
go through ``dynofa pipeline --net ... --checkpoint ... --data ...``, each run in its own child process with its
own data cache, once per classifier setting of the levels:

- ``own``: the defaults, each level with its own fitted classifier head and tuned BN scale/shift;
- ``shared``: ``--no-heads``, the levels share the supernet's classifier, as the subnets of OFA's published
  supernets do.

Reported per run: each stage's wall time, the child's peak RSS, the library's levels, and whether the perception
runtime serves the library with the dataset's class names.
Goals: per run, peak RSS <= 8 GB and <= 45 min on a 2-core machine; >= 5 levels built with the shared classifier
(with their own heads, the levels of a random supernet are about equally accurate: the figure is reported).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NET = "ofa_mbv3_d234_e346_k357_w1.2"
RSS_GOAL_GB = 8.0
WALL_GOAL_MIN = 45.0
MIN_LEVELS = 5
CLASSIFIERS = {  # setting -> (section title, extra build-library options)
    "own": ("Each level with its own classifier head and tuned BN (the defaults)", ""),
    "shared": ("The levels share the supernet's classifier (`--no-heads`)", "--no-heads"),
}


@dataclass
class PipelineRun:
    """One pipeline child process: its stage times line, wall time, peak RSS, level lines and the served labels."""

    classifier: str
    stages: str
    wall_s: float
    peak_gb: float
    levels: list[str]
    names_ok: bool


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


def run_pipeline(work: Path, checkpoint: Path, data: Path, classifier: str, levels: int, classes: int
                 ) -> PipelineRun:
    """``dynofa pipeline`` with ``classifier``'s options in its own folder of ``work``; SystemExit when it fails."""
    from dynofa_ros.supernet.runtime import DynamicNetwork

    folder = work / classifier
    shutil.rmtree(folder, ignore_errors=True)  # a kept --work run again: no stale cache may shorten the stages
    folder.mkdir()
    build_args = f"--levels {levels} {CLASSIFIERS[classifier][1]}".strip()
    cmd = [sys.executable, "-m", "dynofa_ros.offline.cli", "pipeline", "--net", NET, "--checkpoint", str(checkpoint),
           "--data", str(data), "--cache-dir", str(folder / "cache"), "--work", str(folder / "run"),
           "--out", str(folder / "library"), "--build-library-args", build_args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    log = folder / "pipeline.log"
    print(f"== {classifier} classifier: {shlex.join(cmd[2:])} (log: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest of all children
    wall = time.perf_counter() - start
    printed = log.read_text()
    if rc := os.waitstatus_to_exitcode(status):
        print(printed[-4000:])
        raise SystemExit(f"the pipeline with the {classifier} classifier failed (exit {rc})")
    net = DynamicNetwork.from_library(folder / "library" / "library.json")
    built = [line for line in printed.splitlines() if re.match(r"L\d+: top-1", line)]
    names_ok = net.spec.class_names == tuple(f"class_{k}" for k in range(classes))
    return PipelineRun(classifier, re.search(r"== stage wall times: (.*)", printed).group(1), wall,
                       usage.ru_maxrss / 2**20, built, names_ok)


def report(run: PipelineRun, levels: int) -> tuple[list[str], bool]:
    """The Markdown lines of one run and whether it met its goals."""
    checks = [(run.peak_gb <= RSS_GOAL_GB, f"peak RSS {run.peak_gb:.2f} GB <= {RSS_GOAL_GB:g} GB"),
              (run.wall_s / 60 <= WALL_GOAL_MIN, f"whole pipeline {run.wall_s / 60:.1f} min <= {WALL_GOAL_MIN:g} min"),
              (run.names_ok, "the perception runtime serves the library with the dataset's class names")]
    built = f"{len(run.levels)} of {levels} levels kept (the build drops a level not more accurate than a faster one)"
    if run.classifier == "shared":
        checks.append((len(run.levels) >= MIN_LEVELS, f"{built}: >= {MIN_LEVELS}"))
    return [
        f"### {CLASSIFIERS[run.classifier][0]}",
        "",
        f"- Stage wall times: {run.stages}; total {run.wall_s / 60:.1f} min; peak RSS {run.peak_gb:.2f} GB",
        *([] if run.classifier == "shared" else [f"- {built}: a random subnet with its own fitted head is about as "
                                                 "accurate as a larger one, so few levels are kept"]),
        "- Levels:",
        "",
        *[f"  - {line}" for line in run.levels],
        "",
        *[f"- {'PASS' if ok else 'FAIL'}: {text}" for ok, text in checks],
        "",
    ], all(ok for ok, _ in checks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=5, help="synthetic classes (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=80, help="training images per class (default: "
                        "%(default)s; a quarter as many test images)")
    parser.add_argument("--levels", type=int, default=7, help="levels build-library picks (default: %(default)s)")
    parser.add_argument("--classifier", nargs="+", choices=list(CLASSIFIERS), default=list(CLASSIFIERS),
                        help="classifier settings to run the pipeline with, one run each (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "pipeline.md",
                        help="Markdown fragment (default: %(default)s)")
    args = parser.parse_args(argv)
    from dynofa_ros.offline.timing import processor_name

    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()  # each pipeline runs with its own folder in work as its cwd
        work.mkdir(parents=True, exist_ok=True)
        checkpoint, data = prepare(work, args.classes, args.per_class)
        runs = [run_pipeline(work, checkpoint, data, c, args.levels, args.classes) for c in dict.fromkeys(
            args.classifier)]
    sections = [report(run, args.levels) for run in runs]
    lines = [
        "## Offline pipeline at 224 px, published w1.2 layout (bench_pipeline.py)",
        "",
        f"- Machine: {processor_name()}, {os.cpu_count()} logical cores (shared: times are indicative); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Input: random-weight `{NET}` saved as `{{'state_dict': ...}}`; synthetic ImageFolder, {args.classes} "
        f"classes, {args.per_class} train + {max(1, args.per_class // 4)} val images per class, mixed sizes around "
        f"224 px. Every stage at its defaults but `--build-library-args '--levels {args.levels}'` and the "
        "classifier setting; one run per setting, one after the other, each in its own process with its own data "
        "cache.",
        f"- Command: `python benchmarks/bench_pipeline.py` (runs `dynofa pipeline --net {NET} --checkpoint ... "
        "--data ...`)",
        "- Random weights: the accuracies say nothing about the supernet. With the shared classifier, fitted for "
        "the largest subnet, a subnet closer to the largest scores higher.",
        "",
        *[line for section, _ in sections for line in section],
    ]
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print("\n".join(lines))
    return 0 if all(ok for _, ok in sections) else 1


if __name__ == "__main__":
    raise SystemExit(main())
