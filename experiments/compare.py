"""``python -m experiments.compare``: Dynamic-OFA's library against a width-only dynamic network and static networks.

Every level of every approach is turned into a static eval-mode network (ours: the library's extracted
subnets with their stored BN statistics and heads; baselines: the width-``w`` network with BN recalibrated on
the same ``n_calib`` training images and, when the library has per-level heads, its own head fitted the same
way, after its BN scale/shift are trained as the library's levels' were), evaluated on the same test images,
and timed at batch 1 in one run on this machine, all networks interleaved per profile (``cpu-<n>t``: fixed
thread count; ``gpu``: CUDA, synchronised). Per profile, each approach's Pareto front (latency vs top-1) is
compared with ours by piecewise-linear interpolation on the fronts, only inside the range both fronts cover:
speedup at equal top-1 (their latency / ours) and top-1 gain at equal latency (ours - theirs).
Writes ``compare.json``, ``compare.md`` and a plot.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ofa.utils import count_net_flops, count_parameters
from torch import nn
from tqdm import tqdm

from dynofa_ros.datasets.image_dataset import load_dataset
from dynofa_ros.offline.bn_tuning import BnTuneConfig, fit_tuned_head, running_stats
from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import add_data_arguments, val_size
from dynofa_ros.offline.data import stratified_split, subset
from dynofa_ros.offline.profile import CPU_PROFILES, cpu_threads
from dynofa_ros.offline.search import pareto_front
from dynofa_ros.offline.timing import Timing, cuda_sync, processor_name, time_interleaved
from dynofa_ros.supernet.bn import load_bn_stats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.heads import apply_head
from dynofa_ros.supernet.library import SubnetLibrary, default_library_path, sha256_file
from dynofa_ros.supernet.runtime import extract_subnet, library_heads
from experiments.slimmable import accuracy, calibrate_level, level_grid, load_baseline

COMPARE_FORMAT = "dynofa-compare/1"
GPU_PROFILE = "gpu"
OURS = "dynamic-ofa"
LABELS = {OURS: "Dynamic-OFA (ours)", "width-only": "width-only (US-Nets MobileNetV3)",
          "static": "static torchvision MobileNetV3"}


# ------------------------------------------------------------------------------------ front arithmetic


def front_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated (latency, accuracy) points (:func:`~dynofa_ros.offline.search.pareto_front`), by
    increasing latency and strictly increasing accuracy."""
    keep = pareto_front([lat for lat, _ in points], [acc for _, acc in points])
    return [(float(points[i][0]), float(points[i][1])) for i in keep]


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """Piecewise-linear ``y(x)`` through increasing ``xs``; None outside ``[xs[0], xs[-1]]``."""
    if not xs or x < xs[0] - 1e-12 or x > xs[-1] + 1e-12:
        return None
    return float(np.interp(x, xs, ys))


def latency_at(front: Sequence[tuple[float, float]], top1: float) -> float | None:
    """Latency at which the front reaches ``top1`` (None outside its accuracy range)."""
    return interpolate([a for _, a in front], [lat for lat, _ in front], top1)


def accuracy_at(front: Sequence[tuple[float, float]], latency: float) -> float | None:
    """Top-1 of the front at ``latency`` (None outside its latency range)."""
    return interpolate([lat for lat, _ in front], [a for _, a in front], latency)


def _overlap(a: Sequence[float], b: Sequence[float]) -> tuple[float, float] | None:
    lo, hi = max(min(a), min(b)), min(max(a), max(b))
    return (lo, hi) if lo <= hi else None


def _in_range(values: Sequence[float], span: tuple[float, float]) -> list[float]:
    return sorted({span[0], span[1], *(v for v in values if span[0] <= v <= span[1])})


@dataclass
class FrontComparison:
    """Ours against one other front on one profile: samples at every front vertex inside the overlap.

    ``speedup``: (top-1, our latency, their latency, their / our latency);
    ``gain``: (latency, our top-1, their top-1, ours - theirs).
    """

    other: str
    profile: str
    accuracy_overlap: tuple[float, float] | None
    latency_overlap: tuple[float, float] | None
    speedup: list[tuple[float, float, float, float]] = field(default_factory=list)
    gain: list[tuple[float, float, float, float]] = field(default_factory=list)
    dominated: tuple[int, int] = (0, 0)

    def summary(self, column: str) -> dict[str, float] | None:
        """min/median/max of the speedup ratios or accuracy gains (None without an overlap)."""
        values = [row[3] for row in getattr(self, column)]
        if not values:
            return None
        return {"min": min(values), "median": statistics.median(values), "max": max(values)}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup_summary": self.summary("speedup"), "gain_summary": self.summary("gain")}


def compare_fronts(ours: Sequence[tuple[float, float]], other: Sequence[tuple[float, float]], other_name: str = "",
                   profile: str = "") -> FrontComparison:
    """Speedup at equal accuracy and accuracy gain at equal latency of Pareto front ``ours`` over ``other``,
    sampled at both fronts' vertices (and the overlap's ends) inside the overlapping range only.

    ``dominated`` counts the other front's points that one of ours beats (no slower, no less accurate,
    one of the two strictly).
    """
    if not ours or not other:
        raise ValueError("both fronts need at least one point")
    result = FrontComparison(other_name, profile, _overlap([a for _, a in ours], [a for _, a in other]),
                             _overlap([lat for lat, _ in ours], [lat for lat, _ in other]))
    if result.accuracy_overlap is not None:
        for acc in _in_range([a for _, a in [*ours, *other]], result.accuracy_overlap):
            mine, theirs = latency_at(ours, acc), latency_at(other, acc)
            result.speedup.append((acc, mine, theirs, theirs / mine))
    if result.latency_overlap is not None:
        for lat in _in_range([t for t, _ in [*ours, *other]], result.latency_overlap):
            mine, theirs = accuracy_at(ours, lat), accuracy_at(other, lat)
            result.gain.append((lat, mine, theirs, mine - theirs))
    beaten = sum(any(t <= lat and a >= acc and (t, a) != (lat, acc) for t, a in ours) for lat, acc in other)
    result.dominated = (beaten, len(other))
    return result


# ------------------------------------------------------------------------------------------ the levels


@dataclass
class LevelNet:
    """One operating point of one approach, as a standalone eval-mode network with its input size."""

    approach: str
    name: str
    resolution: int
    net: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    detail: dict[str, Any]


@dataclass
class Point:
    """A measured operating point: top-1 on the test images and latency per profile."""

    approach: str
    name: str
    resolution: int
    top1: float
    macs: int
    params: int
    source: str
    detail: dict[str, Any]
    latency: dict[str, dict[str, Any]] = field(default_factory=dict)


def _source(path: Path) -> str:
    return f"{path.name}#{sha256_file(path)[:16]}"


def library_levels(library: SubnetLibrary | Path | str) -> list[LevelNet]:
    """Our library's levels as extracted subnets with their stored BN statistics (and heads, when it has them)."""
    lib = library if isinstance(library, SubnetLibrary) else SubnetLibrary.load(library)
    supernet, spec = load_supernet(lib.checkpoint_path, lib.spec)
    stats = load_bn_stats(lib.bn_stats_path)
    source = _source(lib.checkpoint_path)
    return [LevelNet(OURS, level.name, level.arch.resolution, extract_subnet(supernet.eval(), level, st, head),
                     spec.mean, spec.std, source, {"arch": level.arch.to_dict(), "library_top1": level.top1})
            for level, st, head in zip(lib.levels, stats, library_heads(lib), strict=True)]


def baseline_levels(path: Path | str, calib_x: np.ndarray, n_calib: int, widths: Sequence[float] | None = None,
                    calib_y: np.ndarray | None = None, tune: BnTuneConfig | None = None) -> list[LevelNet]:
    """A baseline checkpoint's operating points (static: one; width-only: ``widths`` x its resolutions),
    BN recalibrated on ``n_calib`` of ``calib_x`` per point; with ``calib_y`` (the labels of all ``calib_x``)
    each point's classifier head fitted on them, after its BN scale/shift are trained and folded in with
    ``tune``, as a library's levels' are."""
    base = load_baseline(path)
    cfg = base.model.config
    approach = "static" if cfg.static else "width-only"
    source = _source(base.path)
    levels = []
    for w, r in level_grid(cfg, None if cfg.static else widths):
        name = base.name if cfg.static else f"{base.name}-w{w:g}-r{r}"
        net = calibrate_level(base.model, w, r, calib_x, n_calib)
        _, head = fit_tuned_head(net, running_stats(net), r, cfg.mean, cfg.std, calib_x, calib_y, tune)
        if head is not None:
            apply_head(net, head)
        levels.append(LevelNet(approach, name, r, net, cfg.mean, cfg.std, source,
                               {"layout": cfg.layout, "width": w, "train": base.train}))
    return levels


def measure(levels: Sequence[LevelNet], profile: str, warmup: int, repeats: int, rounds: int) -> list[dict[str, Any]]:
    """Batch-1 latency records of every level under ``profile``, all levels timed interleaved."""
    if profile == GPU_PROFILE:
        if not torch.cuda.is_available():
            raise ValueError("profile 'gpu' needs CUDA, which is not available here")
        device, threads, processor = torch.device("cuda"), torch.get_num_threads(), torch.cuda.get_device_name()
    else:
        device, threads, processor = torch.device("cpu"), cpu_threads(profile), processor_name()

    def call(level: LevelNet) -> Callable[[], object]:
        net, x = level.net.to(device).eval(), torch.randn(1, 3, level.resolution, level.resolution, device=device)
        return lambda: net(x)

    samples = time_interleaved([call(lv) for lv in levels], threads, warmup, repeats, rounds, f"time {profile}",
                               sync=cuda_sync(device))
    for lv in levels:
        lv.net.to("cpu")
    timings = [Timing.of(s, warmup, rounds) for s in samples]
    sync = "; CUDA synchronised before and after each call" if device.type == "cuda" else ""
    method = (f"standalone eval-mode network, fp32, batch 1, {warmup} warm-up, median/p90 of {repeats} in {rounds} "
              f"passes interleaved over all {len(levels)} levels of all approaches in one run{sync}")
    return [{"profile": profile, "device": device.type, "processor": processor, "threads": threads,
             "p50_s": t.p50_s, "p90_s": t.p90_s, "method": method} for t in timings]


def evaluate_levels(levels: Sequence[LevelNet], test_x: np.ndarray, test_y: np.ndarray,
                    device: torch.device) -> list[Point]:
    """Top-1 on the test images, MACs and parameters of every level."""
    points = []
    for lv in tqdm(levels, desc="evaluate levels", unit="net"):
        top1 = accuracy(lv.net.to(device), test_x, test_y, lv.resolution, lv.mean, lv.std)
        lv.net.to("cpu")
        macs = int(count_net_flops(lv.net, (1, 3, lv.resolution, lv.resolution)))
        points.append(Point(lv.approach, lv.name, lv.resolution, top1, macs, int(count_parameters(lv.net)),
                            lv.source, lv.detail))
    return points


def merge_latency(points: Sequence[Point], other: dict[str, Any], origin: str) -> list[str]:
    """Copy latency profiles measured by another ``compare.json`` (``other``) into the points it also holds
    (same approach, level name and checkpoint hash, so the same network); returns the profiles added.
    ValueError when the file is not a comparison or shares no point with this one."""
    if other.get("format") != COMPARE_FORMAT:
        raise ValueError(f"{origin} is not a comparison result (format {COMPARE_FORMAT!r})")
    theirs = {(p["approach"], p["name"], p["source"]): p["latency"] for p in other["points"]}
    matched = [p for p in points if (p.approach, p.name, p.source) in theirs]
    if not matched:
        raise ValueError(f"{origin} measured none of these networks (other checkpoints or levels)")
    added: set[str] = set()
    for point in matched:
        for profile, record in theirs[(point.approach, point.name, point.source)].items():
            if profile not in point.latency:
                point.latency[profile] = {**record, "merged_from": origin}
                added.add(profile)
    return sorted(added)


def fronts_by_profile(points: Sequence[Point]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{profile: {approach: Pareto front of (p50 latency s, top-1)}}``."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for profile in sorted({p for pt in points for p in pt.latency}):
        for approach in dict.fromkeys(pt.approach for pt in points):
            pts = [(pt.latency[profile]["p50_s"], pt.top1) for pt in points
                   if pt.approach == approach and profile in pt.latency]
            if pts:
                out.setdefault(profile, {})[approach] = front_points(pts)
    return out


def comparisons(fronts: dict[str, dict[str, list[tuple[float, float]]]]) -> list[FrontComparison]:
    """Ours against every other approach on every profile where both were measured."""
    return [compare_fronts(per[OURS], front, approach, profile)
            for profile, per in fronts.items() if OURS in per
            for approach, front in per.items() if approach != OURS]


# --------------------------------------------------------------------------------------------- reports


def _fmt_summary(s: dict[str, float] | None, unit: str, scale: float = 1.0) -> str:
    if s is None:
        return "no overlap"
    return f"min {s['min'] * scale:.2f}{unit}, median {s['median'] * scale:.2f}{unit}, max {s['max'] * scale:.2f}{unit}"


def markdown(result: dict[str, Any]) -> str:
    """The comparison as Markdown: per-level table and one summary row per (profile, other approach)."""
    profiles = sorted({p for pt in result["points"] for p in pt["latency"]})
    lines = [f"Comparison run {result['created']} on {result['machine']['processor']} "
             f"(torch {result['machine']['torch']}); top-1 on {result['test_images']} CIFAR-10 test images; "
             f"baselines' BN recalibrated on {result['n_calib']} training images"
             + (", their BN scale/shift trained" if result.get("bn_tuning") else "")
             + (", their classifier heads fitted like the library's" if result.get("heads") else "") + ".", "",
             "| approach | level | res | top-1 % | MMACs | params M | "
             + " | ".join(f"{p} p50 ms" for p in profiles) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(profiles)]
    for pt in result["points"]:
        lat = [f"{pt['latency'][p]['p50_s'] * 1e3:.2f}" if p in pt["latency"] else "–" for p in profiles]
        lines.append(f"| {pt['approach']} | {pt['name']} | {pt['resolution']} | {pt['top1'] * 100:.2f} | "
                     f"{pt['macs'] / 1e6:.1f} | {pt['params'] / 1e6:.2f} | " + " | ".join(lat) + " |")
    lines += ["", "| profile | vs | top-1 overlap % | speedup at equal top-1 | latency overlap ms | "
              "top-1 gain at equal latency (points) | their front points beaten |", "|---|---|---|---|---|---|---|"]
    for c in result["comparisons"]:
        acc = c["accuracy_overlap"]
        lat = c["latency_overlap"]
        lines.append(
            f"| {c['profile']} | {c['other']} | {f'{acc[0] * 100:.2f}–{acc[1] * 100:.2f}' if acc else 'none'} | "
            f"{_fmt_summary(c['speedup_summary'], 'x')} | "
            f"{f'{lat[0] * 1e3:.2f}–{lat[1] * 1e3:.2f}' if lat else 'none'} | "
            f"{_fmt_summary(c['gain_summary'], '', 100)} | {c['dominated'][0]}/{c['dominated'][1]} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], out: Path) -> Path:
    """Latency (log) vs top-1 per profile: every approach's points and Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fronts = result["fronts"]
    fig, axes = plt.subplots(1, len(fronts), figsize=(6 * len(fronts), 4.8), dpi=110, squeeze=False)
    colors = {OURS: "tab:red", "width-only": "tab:blue", "static": "tab:green"}
    for ax, (profile, per) in zip(axes[0], fronts.items(), strict=True):
        for approach, front in per.items():
            pts = [pt for pt in result["points"] if pt["approach"] == approach and profile in pt["latency"]]
            c = colors.get(approach, None)
            ax.scatter([pt["latency"][profile]["p50_s"] * 1e3 for pt in pts], [pt["top1"] * 100 for pt in pts],
                       s=22, color=c, alpha=0.7)
            ax.plot([t * 1e3 for t, _ in front], [a * 100 for _, a in front], "-o", ms=3, color=c,
                    label=LABELS.get(approach, approach))
        ax.set_xscale("log")
        ax.set_xlabel(f"batch-1 latency, median [ms] ({profile})")
        ax.set_ylabel(f"top-1 [%] ({result['test_images']} test images)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"CIFAR-10: accuracy vs latency fronts ({result['machine']['processor']})", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def run_comparison(library: Path | str, baselines: Sequence[Path | str], profiles: Sequence[str],
                   data: Any, val_size: int = 5000, split_seed: int = 0, n_calib: int = LIBRARY_N_CALIB,
                   max_test_images: int | None = None, widths: Sequence[float] | None = None, warmup: int = 20,
                   repeats: int = 100, rounds: int = 5, device: torch.device | str = "cpu",
                   merge: Sequence[Path] = ()) -> dict[str, Any]:
    """Build, evaluate and time every level of every approach; return the ``compare.json`` record.

    ``data`` is a :class:`~dynofa_ros.datasets.image_dataset.ImageDataset`; calibration images come from the same
    training split as the library's (``val_size``, ``split_seed``).
    """
    if not baselines:
        raise ValueError("give at least one baseline checkpoint to compare with")
    for p in profiles:
        if p != GPU_PROFILE:
            cpu_threads(p)
    train = stratified_split(data.train_y, val_size, split_seed).train
    calib = data.train_x[train]
    test_idx = subset(np.arange(len(data.test_y)), max_test_images, split_seed)
    n_calib = min(n_calib, len(calib))
    lib = SubnetLibrary.load(library)
    heads = lib.heads is not None  # then the baselines get theirs the same way, and their BN tuned as the levels'
    tune = BnTuneConfig.from_note(lib.calibration) if heads else None
    levels = library_levels(lib)
    for path in baselines:
        levels += baseline_levels(path, calib, n_calib, widths, data.train_y[train] if heads else None, tune)
    points = evaluate_levels(levels, data.test_x[test_idx], data.test_y[test_idx], torch.device(device))
    for profile in profiles:
        for point, record in zip(points, measure(levels, profile, warmup, repeats, rounds), strict=True):
            point.latency[profile] = record
    merged = {str(path): merge_latency(points, json.loads(Path(path).read_text()), str(path)) for path in merge}
    fronts = fronts_by_profile(points)
    return {
        "format": COMPARE_FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"processor": processor_name(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "library": str(library), "baselines": [str(b) for b in baselines], "measured": list(profiles),
        "merged": merged, "test_images": int(len(test_idx)), "n_calib": n_calib, "heads": heads,
        "bn_tuning": None if tune is None else tune.note(len(calib)),
        "points": [asdict(p) for p in points], "fronts": fronts,
        "comparisons": [c.to_dict() for c in comparisons(fronts)],
    }


# ------------------------------------------------------------------------------------------ command line


def default_profiles() -> list[str]:
    """``cpu-1t``, ``cpu-2t``, and ``gpu`` when CUDA is available."""
    return list(CPU_PROFILES) + ([GPU_PROFILE] if torch.cuda.is_available() else [])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m experiments.compare``."""
    parser.add_argument("--library", type=Path, help="our library.json (default: the shipped one, "
                        "$DYNOFA_LIBRARY or models/cifar10_mbv3/library.json)")
    parser.add_argument("--baselines", type=Path, nargs="+", required=True, metavar="PT",
                        help="baseline checkpoints (width-only and static) from the baseline GPU job")
    parser.add_argument("--widths", type=float, nargs="+", help="width levels of width-only baselines "
                        "(default: 7 spread over the trained range)")
    parser.add_argument("--profiles", nargs="+", default=default_profiles(), metavar="PROFILE",
                        help="cpu-<n>t and/or gpu (default: %(default)s)")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], metavar="JSON",
                        help="compare.json files of the same checkpoints measured elsewhere (e.g. the GPU job's): "
                        "their latency profiles are added to the matching points")
    parser.add_argument("--device", default="cpu", help="device for the top-1 evaluation (default: %(default)s)")
    parser.add_argument("--n-calib", type=int, default=LIBRARY_N_CALIB,
                        help="BN calibration images of the baselines, as many as a library's (default: %(default)s)")
    parser.add_argument("--max-test-images", type=int, help="evaluate on a seeded random N test images (quick runs)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up runs per network (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=100, help="timed runs per network (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved passes (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"),
                        help="folder for compare.json, compare.md, compare.png (default: %(default)s)")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the comparison and write its JSON, Markdown table and plot."""
    library = args.library or default_library_path()
    data = load_dataset(args.data, args.cache_dir)
    result = run_comparison(library, args.baselines, args.profiles, data, val_size(args, len(data.train_y)),
                            args.split_seed,
                            args.n_calib, args.max_test_images, args.widths, args.warmup, args.repeats, args.rounds,
                            args.device, args.merge)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (args.out / "compare.md").write_text(table)
    plot(result, args.out / "compare.png")
    print(table)
    print(f"wrote {args.out}/compare.json, compare.md, compare.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the comparison; problems with the inputs exit 2 with one clear line."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"experiments.compare: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
