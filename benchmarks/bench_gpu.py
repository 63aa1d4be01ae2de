#!/usr/bin/env python3
"""GPU figures of a subnet library: per-level batch-1 latency and level-switch time on CUDA.

Runs where a CUDA device exists (e.g. an H100/H200 machine); elsewhere it says so and exits 0 without
measuring. Both runtime modes are timed side by side: "cache" (pre-extracted subnets) and "inplace"
(the supernet with per-level BN statistics copied in). Writes a JSON record and a Markdown fragment.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynofa_ros.supernet.library import default_library_path  # noqa: E402
from dynofa_ros.supernet.runtime import DynamicNetwork  # noqa: E402


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return statistics.median(ordered), pick(0.9), pick(0.99)


def level_latency(net: DynamicNetwork, warmup: int, runs: int) -> list[dict]:
    """Batch-1 latency per level, synchronised, median/p90 of ``runs`` after ``warmup``."""
    rows = []
    for index, level in enumerate(net.levels):
        net.activate(index)
        r = level.arch.resolution
        x = torch.randn(1, 3, r, r, device=net.device)
        samples = []
        for i in range(warmup + runs):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            net.predict(x)
            torch.cuda.synchronize()
            if i >= warmup:
                samples.append(time.perf_counter() - t0)
        p50, p90, _ = _quantiles(samples)
        rows.append({"level": level.name, "p50_s": p50, "p90_s": p90, "runs": runs})
    return rows


def switch_time(net: DynamicNetwork, switches: int, seed: int = 0) -> dict:
    """Wall time of activate() to a random other level, synchronised (includes BN statistics copies)."""
    rng = random.Random(seed)
    n = len(net.levels)
    samples = []
    for _ in range(switches):
        target = rng.choice([i for i in range(n) if i != net.active_index])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        net.activate(target)
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    p50, p90, p99 = _quantiles(samples)
    return {"p50_s": p50, "p90_s": p90, "p99_s": p99, "switches": switches}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--library", type=Path, default=None, help="library JSON (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bench", help="folder for gpu.json/gpu.md")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--switches", type=int, default=500)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured")
        return 0
    path = args.library or default_library_path()
    record = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "library": str(path), "modes": {}}
    for mode in ("cache", "inplace"):
        net = DynamicNetwork.from_library(path, device="cuda", mode=mode)
        record["modes"][mode] = {"latency": level_latency(net, args.warmup, args.runs),
                                 "switch": switch_time(net, args.switches)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(record, indent=1))
    lines = [f"### GPU (bench_gpu.py): {record['gpu']}, torch {record['torch']}, {record['date']}", "",
             "| level | cache p50 ms | cache p90 ms | in place p50 ms | in place p90 ms |", "|---|---|---|---|---|"]
    for c, i in zip(record["modes"]["cache"]["latency"], record["modes"]["inplace"]["latency"], strict=True):
        lines.append(f"| {c['level']} | {c['p50_s'] * 1e3:.2f} | {c['p90_s'] * 1e3:.2f} | "
                     f"{i['p50_s'] * 1e3:.2f} | {i['p90_s'] * 1e3:.2f} |")
    ok = True
    lines += ["", "| switch | p50 ms | p99 ms | goal p99 <= 1 ms |", "|---|---|---|---|"]
    for mode in ("cache", "inplace"):
        s = record["modes"][mode]["switch"]
        passed = s["p99_s"] <= 1e-3
        ok &= passed
        lines.append(f"| {mode} | {s['p50_s'] * 1e3:.3f} | {s['p99_s'] * 1e3:.3f} | {'PASS' if passed else 'FAIL'} |")
    (args.out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
