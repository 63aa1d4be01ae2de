#!/usr/bin/env python3
"""Serving backends side by side: each level eager (torch), through the runtime on ONNX Runtime, and as a bare
ONNX Runtime session of the same graph.

All three per level are timed interleaved in one run (batch 1, 1 thread, normalised input already made), so a
shared machine's load hits them alike. Reported per level: medians, eager / runtime speed-up, runtime / bare
ratio; the level latency span and whether top-1 rises with the served latency; the load time and the memory
each backend adds (RSS of a fresh process after loading the library, minus the same process before).
Goals: every level >= 3x faster than eager, within 1.1x of the bare session, span >= 4x, top-1 monotone.
Writes a Markdown fragment (default docs/bench/backends.md); exits 1 when a goal FAILs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dynofa_ros.offline.library_build import is_monotone  # noqa: E402
from dynofa_ros.offline.timing import processor_name, time_interleaved  # noqa: E402
from dynofa_ros.supernet.library import SubnetLibrary  # noqa: E402
from dynofa_ros.supernet.onnx_export import cached_onnx  # noqa: E402
from dynofa_ros.supernet.runners import OrtRunner  # noqa: E402
from dynofa_ros.supernet.runtime import DynamicNetwork  # noqa: E402
from dynofa_ros.supernet.synthetic import shipped_or_synthetic  # noqa: E402

SPEEDUP_GOAL, BARE_GOAL, SPAN_GOAL = 3.0, 1.1, 4.0

# A fresh interpreter: RSS after the imports, then after loading the library with one backend.
LOAD_PROCESS = """
import json, sys, time, psutil, torch
from dynofa_ros.supernet.runtime import DynamicNetwork
torch.set_num_threads(1)
rss = psutil.Process().memory_info().rss
start = time.perf_counter()
net = DynamicNetwork.from_library(sys.argv[1], backend=sys.argv[2])
load_s = time.perf_counter() - start
print(json.dumps({"rss_bytes": psutil.Process().memory_info().rss - rss, "load_s": load_s,
                  "backends": list(net.level_backends)}))
"""


def load_cost(library: Path, backend: str) -> dict:
    """Memory and load time of the library with ``backend`` in a fresh process (exports already cached)."""
    out = subprocess.run([sys.executable, "-c", LOAD_PROCESS, str(library), backend], capture_output=True,
                         text=True, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_session(path: Path) -> OrtRunner:
    """A plain ONNX Runtime session of ``path`` with the runtime's options, called with a numpy array."""
    return OrtRunner(path, torch.device("cpu"), threads=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=None, help="library.json (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=300, help="timed batch-1 runs per level and way")
    parser.add_argument("--warmup", type=int, default=20, help="untimed runs before the first pass")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved passes the repeats are split into")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench" / "backends.md",
                        help="Markdown fragment (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, synthetic = shipped_or_synthetic(args.library, tmp)
        return run(args, path, synthetic)


def run(args: argparse.Namespace, path: Path, synthetic: bool) -> int:
    torch.set_num_threads(1)
    library = SubnetLibrary.load(path)
    served = DynamicNetwork.from_library(path, backend="onnxruntime")
    if served.level_backends != ("onnxruntime",) * len(served.levels):
        print(f"FAIL: not every level is served by onnxruntime: {served.level_backends}")
        return 1
    calls: list = []
    rows: list[str] = []
    for i, level in enumerate(served.levels):
        r = level.arch.resolution
        x = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(i))
        eager, bare = served.module(i), bare_session(cached_onnx(served.module(i), r))
        x_np = x.numpy()

        def through_runtime(i: int = i, x: torch.Tensor = x) -> object:
            served.request_level(i)  # the level is already active: the frame path without a switch
            return served.run(x)

        calls += [lambda m=eager, x=x: m(x), through_runtime,
                  lambda s=bare, x=x_np: s.session.run([s.output], {s.input: x})]
    samples = time_interleaved(calls, 1, args.warmup, args.repeats, args.rounds, "eager / runtime / bare")
    medians = np.array([np.median(s) for s in samples]).reshape(len(served.levels), 3)
    speedup, overhead = medians[:, 0] / medians[:, 1], medians[:, 1] / medians[:, 2]
    for level, (eager_s, runtime_s, bare_s), up, over in zip(served.levels, medians, speedup, overhead, strict=True):
        rows.append(f"| {level.name} | {level.arch.resolution} | {level.macs / 1e6:.1f} | "
                    f"{'-' if level.top1 is None else f'{level.top1 * 100:.2f}'} | {eager_s * 1e3:.2f} | "
                    f"{runtime_s * 1e3:.2f} | {bare_s * 1e3:.2f} | {up:.1f}x | {over:.2f}x |")
    served_s = medians[:, 1]
    span = served_s.max() / served_s.min()
    top1 = [lv.top1 for lv in library.levels]
    goals = {f"every level >= {SPEEDUP_GOAL:.0f}x faster than eager (min {speedup.min():.1f}x)":
             speedup.min() >= SPEEDUP_GOAL,
             f"every level within {BARE_GOAL}x of the bare session (max {overhead.max():.2f}x)":
             overhead.max() <= BARE_GOAL,
             f"served latency span {span:.1f}x (goal >= {SPAN_GOAL:.0f}x; eager "
             f"{medians[:, 0].max() / medians[:, 0].min():.1f}x)": span >= SPAN_GOAL}
    if None not in top1:
        goals["top-1 rises with the served latency"] = is_monotone(list(served_s), top1)
    costs = {b: load_cost(path, b) for b in ("torch", "onnxruntime")}

    lines = [
        "## Serving backends (ONNX Runtime vs eager PyTorch)",
        "",
        f"- Machine: {processor_name()}, {os.cpu_count()} CPUs; torch {torch.__version__}, onnxruntime "
        f"{__import__('onnxruntime').__version__}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Library: `{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`"
        + (" (synthetic random weights)" if synthetic else ""),
        f"- Command: `python benchmarks/bench_backends.py` (batch 1, 1 thread, median of {args.repeats} runs per "
        f"level and way in {args.rounds} interleaved passes; inputs already normalised)",
        "",
        "| level | px | MMACs | top-1 % | eager [ms] | runtime, onnxruntime [ms] | bare session [ms] | "
        "speed-up | runtime / bare |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "| backend | load time [s] | memory added [MB] |",
        "|---|---|---|",
        *(f"| {b} | {c['load_s']:.2f} | {c['rss_bytes'] / 1e6:.0f} |" for b, c in costs.items()),
        "",
        *(f"- {'PASS' if passed else 'FAIL'}: {goal}" for goal, passed in goals.items()),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
