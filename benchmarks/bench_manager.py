#!/usr/bin/env python3
"""Benchmark the runtime manager's policies on the SIMULATED Jetson Xavier NX (and, with --real-contention,
a real CPU-contention run of the supernet runtime on this machine).

Writes a Markdown fragment (default docs/bench/manager.md) and PNG plots (docs/img/manager_*.png).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_contention import REAL_SECTION, real_contention  # noqa: E402

from dynofa_ros.manager.harness import (  # noqa: E402
    GoalCheck,
    RunResult,
    best_governor,
    check_goal,
    fixed_levels_for,
    run_scenario,
)
from dynofa_ros.manager.models import LevelPoint, levels_from_library, synthetic_levels  # noqa: E402
from dynofa_ros.manager.policy import GOVERNORS  # noqa: E402
from dynofa_ros.manager.scenarios import Scenario, default_scenarios  # noqa: E402
from dynofa_ros.offline.timing import processor_name  # noqa: E402
from dynofa_ros.supernet.library import SubnetLibrary  # noqa: E402
from dynofa_ros.supernet.synthetic import shipped_or_synthetic  # noqa: E402

GOALS = {"one-app": 0.25, "two-apps": 0.50}
MODEL_ERROR = (1.2, 0.8)  # the mis-calibrated joint runs' model: latency x1.2, power x0.8
MISCAL_SUFFIX = "@miscal"
JOINT_LABELS = ("joint@eq-acc", "joint", f"joint@eq-acc{MISCAL_SUFFIX}", f"joint{MISCAL_SUFFIX}")
BASELINES = ["dvfs-only", "subnet-only", "static"] + [f"governor:{g}" for g in GOVERNORS]


def load_levels(path: str | None) -> tuple[tuple[LevelPoint, ...], str]:
    """The shipped library's levels when present (or ``path``), else the synthetic set; and a description."""
    try:
        lib_path, _ = shipped_or_synthetic(path, None)  # a random-weight library has no top-1 to trade
    except FileNotFoundError as exc:
        return synthetic_levels(), f"synthetic level set (no shipped library: {str(exc).splitlines()[0]})"
    lib = SubnetLibrary.load(lib_path, verify=False)
    return levels_from_library(lib), f"shipped library `{lib.name}` ({lib_path}, {len(lib.levels)} levels)"


def run_all(scenarios: list[Scenario], levels: tuple[LevelPoint, ...], seed: int,
            noise: float) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for sc in scenarios:
        fixed = fixed_levels_for(sc, levels)
        eq_acc = {a: levels[i].top1 for a, i in fixed.items()}
        common = {"fixed_levels": fixed, "seed": seed, "noise_sigma": noise}
        runs = []
        for suffix, error in (("", (1.0, 1.0)), (MISCAL_SUFFIX, MODEL_ERROR)):
            runs += [run_scenario(sc, "joint", levels, label=f"joint{suffix}", model_error=error, **common),
                     run_scenario(sc, "joint", levels, min_accuracy=eq_acc, label=f"joint@eq-acc{suffix}",
                                  model_error=error, **common)]
        runs += [run_scenario(sc, p, levels, **common) for p in BASELINES]
        out[sc.name] = runs
        gov = best_governor(runs)
        print(f"[{sc.name}] fixed levels {fixed}; best governor {gov.policy} {gov.energy_j:.1f} J", flush=True)
        for r in runs:
            print(f"  {r.policy:26s} {r.energy_j:8.1f} J  miss {r.miss_rate * 100:5.1f} %  acc {r.mean_accuracy:.3f}"
                  f"  peak {r.peak_temp_c:5.1f} C  throttled {r.throttled_s:4.1f} s", flush=True)
    return out


def goal_checks(scenarios: list[Scenario], results: dict[str, list[RunResult]]) -> list[GoalCheck]:
    checks = []
    for sc in scenarios:
        goal = next((GOALS[t] for t in sc.tags if t in GOALS), None)
        if goal is None:
            continue
        runs = results[sc.name]
        gov = best_governor(runs)
        for label in JOINT_LABELS:
            checks.append(check_goal(next(r for r in runs if r.policy == label), gov, goal))
    return checks


def thermal_checks(scenarios: list[Scenario], results: dict[str, list[RunResult]], trip_c: float) -> list[str]:
    lines = []
    for sc in scenarios:
        if "thermal" not in sc.tags:
            continue
        for r in results[sc.name]:
            if r.policy.startswith("joint"):
                ok = r.peak_temp_c < trip_c and r.throttled_s == 0
                lines.append(f"- {sc.name} / {r.policy}: peak {r.peak_temp_c:.1f} °C vs trip {trip_c:.0f} °C, "
                             f"hardware throttling {r.throttled_s:.1f} s → **{'PASS' if ok else 'FAIL'}**")
        hot = [r for r in results[sc.name] if r.throttled_s > 0]
        lines.append(f"- {sc.name}: policies the hardware throttled: "
                     f"{', '.join(f'{r.policy} ({r.throttled_s:.0f} s)' for r in hot) or 'none'}")
    return lines


def plot(scenarios: list[Scenario], results: dict[str, list[RunResult]], img_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for sc in scenarios:
        runs = results[sc.name]
        shown = [r for r in runs if r.policy == "joint"] + [best_governor(runs)] + \
            [r for r in runs if r.policy == "subnet-only"]
        fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
        for r in shown:
            for app_id, m in r.apps.items():
                t = [x[0] for x in m.latencies]
                axes[0].plot(t, [x[1] * 1e3 for x in m.latencies], lw=0.7, label=f"{r.policy} {app_id}")
                axes[0].plot(t, [x[2] * 1e3 for x in m.latencies], "k--", lw=0.6)
                lv = r.trace.get(f"level:{app_id}", [])
                axes[1].step([x[0] for x in lv], [x[1] for x in lv], where="post", label=f"{r.policy} {app_id}")
            for name, series in r.trace.items():
                if name.startswith("freq_mhz:"):
                    axes[2].step([x[0] for x in series], [x[1] for x in series], where="post",
                                 label=f"{r.policy} {name[9:]}")
            temp = r.trace.get("temp_c", [])
            axes[3].plot([x[0] for x in temp], [x[1] for x in temp], label=r.policy)
        for ax, ylabel in zip(axes, ("latency (ms)", "level", "frequency (MHz)", "max zone (°C)"), strict=True):
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=6, loc="upper right")
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(f"SIMULATED Xavier NX — scenario {sc.name}: {sc.description}", fontsize=9)
        fig.tight_layout()
        path = img_dir / f"manager_{sc.name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [r.policy for r in results[scenarios[0].name]]
    width = 0.8 / len(scenarios)
    for k, sc in enumerate(scenarios):
        ax.bar([i + k * width for i in range(len(names))], [r.energy_j for r in results[sc.name]], width,
               label=sc.name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("board energy VDD_IN (J)")
    ax.set_title("SIMULATED Xavier NX: energy per policy and scenario", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = img_dir / "manager_energy.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [*paths, path]


def markdown(scenarios, results, checks, thermal, lib_desc, args, elapsed_s, plots) -> str:
    lines = [
        "# Runtime manager benchmark (SIMULATED Jetson Xavier NX)",
        "",
        f"- date {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, host {platform.node()} "
        f"({processor_name()}, Python {platform.python_version()}); wall time {elapsed_s:.0f} s",
        "- **the board is simulated** (`dynofa_ros.platform.sim`, config/platforms/xavier_nx.yaml); energy is "
        "the simulated VDD_IN integral over the run; frame times carry log-normal noise "
        f"(sigma {args.noise}, seed {args.seed}); every policy sees the same trace",
        f"- levels: {lib_desc}",
        "- the joint controller and DVFS-only predict with the simulator's own latency/power models "
        "(`SimBoardModel`), corrected online by a per-app Kalman slowdown; contention and noise are unknown to them",
        f"- **…{MISCAL_SUFFIX}**: the same joint runs with a deliberately mis-calibrated model (latency × "
        f"{MODEL_ERROR[0]:g}, power × {MODEL_ERROR[1]:g}), so the result does not rest on the controller knowing "
        "the simulator exactly",
        "- miss rate = (frames over their latency target + camera ticks dropped because the previous frame "
        "was still running) / camera ticks",
        "- baselines that do not choose levels run the most accurate level whose model latency at the top "
        "frequency meets every target of the scenario with 5 % to spare",
        "- **joint@eq-acc**: joint controller with min accuracy = that fixed level's top-1 (comparison at equal "
        "accuracy); **joint**: the scenario's own floor (none; free comparison, trades accuracy for energy)",
        "",
        "## Goals",
        "",
        "Best governor = the lowest-energy governor with miss rate ≤ 5 %; 'equal or lower miss rate' allows "
        "1 percentage point.",
        "",
        "| scenario | policy | vs governor | energy saving | goal | miss policy | miss governor | result |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for c in checks:
        lines.append(f"| {c.scenario} | {c.policy} | {c.governor} | {c.saving * 100:.1f} % | {c.goal * 100:.0f} % | "
                     f"{c.miss_policy * 100:.1f} % | {c.miss_governor * 100:.1f} % | "
                     f"**{'PASS' if c.passed else 'FAIL'}** |")
    lines += ["", "Thermal:", "", *thermal, ""]
    for sc in scenarios:
        runs = results[sc.name]
        gov = best_governor(runs)
        lines += [f"## {sc.name}: {sc.description}", "",
                  "| policy | energy (J) | vs best governor | miss | dropped | mean top-1 | peak °C | throttled s |"
                  " level / freq changes | gives way (periods) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in runs:
            gw = ", ".join(f"{a} {n}" for a, n in r.gives_way.items()) or "-"
            dropped = sum(a.dropped for a in r.apps.values())
            rel = (r.energy_j / gov.energy_j - 1) * 100
            acc = "n/a" if math.isnan(r.mean_accuracy) else f"{r.mean_accuracy:.3f}"
            lines.append(f"| {r.policy} | {r.energy_j:.1f} | {rel:+.1f} % | {r.miss_rate * 100:.1f} % | {dropped} | "
                         f"{acc} | {r.peak_temp_c:.1f} | {r.throttled_s:.1f} | "
                         f"{r.level_changes} / {r.freq_changes} | {gw} |")
        if len(runs[0].apps) > 1:
            lines += ["", "Per-app energy attribution (dynamic energy of each app's frames, J): " + "; ".join(
                f"{r.policy}: " + ", ".join(f"{a} {m.energy_j:.1f}" for a, m in r.apps.items())
                for r in runs if r.policy in (*JOINT_LABELS, gov.policy))]
        lines.append("")
    lines += ["Plots: " + ", ".join(f"`{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}`" for p in plots), ""]
    return "\n".join(lines)


def write_section(path: Path, marker: str, text: str, keep_rest: bool) -> None:
    """Write ``text`` to ``path`` keeping the other run mode's part: with ``keep_rest`` the file's text
    before ``marker`` is kept and ``text`` replaces the rest; otherwise ``text`` replaces what precedes it."""
    old = path.read_text() if path.exists() else ""
    head, sep, tail = old.partition(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_rest:
        path.write_text(head.rstrip() + ("\n\n" if head.strip() else "") + text)
    else:
        path.write_text(text.rstrip() + "\n" + ("\n" + sep + tail if sep else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", help="subnet library JSON (default: the shipped one, else a synthetic set)")
    ap.add_argument("--scenarios", nargs="*", help="scenario names (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.03, help="log-normal sigma of simulated frame times")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "manager.md")
    ap.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--real-contention", action="store_true",
                    help="instead: real CPU run of the supernet runtime with a competing process (needs the library)")
    ap.add_argument("--frames", type=int, default=150, help="--real-contention: frames per policy")
    args = ap.parse_args(argv)
    if args.real_contention:
        result = real_contention(args)
        if result is None:
            return 2
        section, passed = result
        write_section(args.out, REAL_SECTION, section, keep_rest=True)
        print(section)
        print(f"wrote {args.out}")
        return 0 if passed else 1
    t0 = time.time()
    levels, lib_desc = load_levels(args.library)
    print(f"levels: {lib_desc}", flush=True)
    scenarios = default_scenarios()
    if args.scenarios:
        unknown = set(args.scenarios) - {s.name for s in scenarios}
        if unknown:
            ap.error(f"unknown scenarios {sorted(unknown)}; known: {[s.name for s in scenarios]}")
        scenarios = [s for s in scenarios if s.name in args.scenarios]
    results = run_all(scenarios, levels, args.seed, args.noise)
    checks = goal_checks(scenarios, results)
    from dynofa_ros.platform.sim.config import BoardConfig

    trip = min(z.trip_c for z in BoardConfig.load(None).thermal.zones)
    thermal = thermal_checks(scenarios, results, trip)
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'} {c.scenario} {c.policy}: {c.saving * 100:.1f} % less energy than "
              f"{c.governor} (goal {c.goal * 100:.0f} %), miss {c.miss_policy * 100:.1f} % vs "
              f"{c.miss_governor * 100:.1f} %")
    for line in thermal:
        print(line)
    plots = [] if args.no_plots else plot(scenarios, results, args.img_dir)
    text = markdown(scenarios, results, checks, thermal, lib_desc, args, time.time() - t0, plots)
    write_section(args.out, REAL_SECTION, text, keep_rest=False)
    print(f"wrote {args.out}")
    failed = [f"{c.scenario}/{c.policy}" for c in checks if not c.passed] + [t for t in thermal if "FAIL" in t]
    if failed:
        print(f"FAILED goals: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
