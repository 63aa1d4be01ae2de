#!/usr/bin/env python3
"""Start-up footprint of the node entry points: import time and peak RSS of a fresh interpreter.

For each node module, a fresh ``python -c`` process imports it ``--repeats`` times over; the table gives the
median import seconds, the median peak RSS (``ru_maxrss``) and whether torch got loaded. The manager and
platform nodes must load no torch (the runtime is free of the training stack): a PASS/FAIL line each, exit
code 1 on a FAIL. ``--baseline DIR`` measures a second source tree (e.g. a ``git worktree`` of an older
commit) side by side. Prints the Markdown table; ``--out FILE`` also writes it there (``make bench`` writes
docs/bench/node_footprint.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NODES = ("manager_node", "platform_node", "camera_node", "evaluator_node", "perception_node", "bringup")
TORCH_FREE = ("manager_node", "platform_node")  # goal: these load no torch

PROBE = (
    "import time, resource; t = time.perf_counter(); import {module}; dt = time.perf_counter() - t; "
    "import sys; print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'torch' in sys.modules, "
    "sys.modules['dynofa_ros'].__path__[0])"
)


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo, else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def probe(module: str, tree: Path | None) -> tuple[float, float, bool, str]:
    """Import ``module`` in a fresh interpreter: (seconds, peak RSS MB, torch loaded, dynofa_ros folder)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree or ""), env.get("PYTHONPATH", ""), str(ROOT)) if p)
    with tempfile.TemporaryDirectory() as cwd:  # keep the working directory off sys.path[0]
        out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env, cwd=cwd,
                             capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{out.stderr}")
    seconds, rss_kb, torch, where = out.stdout.strip().splitlines()[-1].split(" ", 3)
    return float(seconds), int(rss_kb) / 1024, torch == "True", where


def measure(nodes: list[str], tree: Path | None, repeats: int) -> tuple[dict[str, tuple[float, float, bool]], str]:
    """Per node: (median seconds, median peak RSS MB, torch loaded); and the dynofa_ros folder imported."""
    rows, where = {}, ""
    for node in nodes:
        runs = [probe(f"dynofa_ros.nodes.{node}", tree) for _ in range(repeats)]
        where = runs[0][3]
        rows[node] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                      any(r[2] for r in runs))
        print(f"[footprint] {node} ({where}): {rows[node][0]:.3f} s, {rows[node][1]:.1f} MB, "
              f"torch {'yes' if rows[node][2] else 'no'}", file=sys.stderr, flush=True)
    bare = [probe("dynofa_ros", tree) for _ in range(repeats)]  # the interpreter plus an empty package
    rows["(package dynofa_ros only)"] = (statistics.median(r[0] for r in bare), statistics.median(r[1] for r in bare),
                                  False)
    return rows, where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per node (default: 5)")
    parser.add_argument("--nodes", nargs="+", default=list(NODES), choices=NODES, metavar="NODE",
                        help=f"node modules under dynofa_ros.nodes (default: all of {' '.join(NODES)})")
    parser.add_argument("--baseline", type=Path, help="a second source tree to measure side by side")
    parser.add_argument("--baseline-label", default="", help="how the fragment names the baseline (default: its path)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    rows, where = measure(args.nodes, None, args.repeats)
    base, base_where = measure(args.nodes, args.baseline, args.repeats) if args.baseline else ({}, "")
    lines = [
        "## Node start-up footprint (bench_node_footprint.py)",
        "",
        f"- Machine: {cpu_name()}, {os.cpu_count()} logical cores (shared with other jobs: numbers are noisy); "
        f"Python {platform.python_version()}; {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- Each figure is the median of {args.repeats} fresh `python -c 'import dynofa_ros.nodes.<node>'` "
        "processes: import seconds (`time.perf_counter`) and peak RSS of the process (`ru_maxrss`).",
    ]
    if base:
        lines.append(f"- Baseline: {args.baseline_label or f'`{base_where}`'}, measured in the same run.")
    lines.append("")
    if base:
        lines += ["| node | import s | peak RSS MB | torch loaded | baseline import s | baseline peak RSS MB "
                  "| baseline torch |", "|---|---|---|---|---|---|---|"]
    else:
        lines += ["| node | import s | peak RSS MB | torch loaded |", "|---|---|---|---|"]
    for node, (seconds, rss, torch) in rows.items():
        line = f"| {node} | {seconds:.3f} | {rss:.1f} | {'yes' if torch else 'no'} |"
        if base:
            b_s, b_rss, b_torch = base[node]
            line += f" {b_s:.3f} | {b_rss:.1f} | {'yes' if b_torch else 'no'} |"
        lines.append(line)
    verdicts = [f"- {'FAIL' if rows[node][2] else 'PASS'}: {node} loads no torch"
                for node in TORCH_FREE if node in rows]
    lines += ["", *verdicts] if verdicts else []
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 1 if any(v.startswith("- FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
