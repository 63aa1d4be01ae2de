"""Time series of one run and the end-of-run report: ``summary.json`` + PNG plots (matplotlib, Agg). No ROS."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SETTLE_S = 2.0  # target_miss_rate_settled leaves out the frames this soon after an event (target, load...)


@dataclass
class AppSeries:
    """Per-frame samples of one app (t in s since the run started)."""

    t: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    level: list[int] = field(default_factory=list)
    expected_accuracy: list[float] = field(default_factory=list)
    dropped: int = 0
    lost: int = 0  # estimated: frames that never reached the app (gaps in the input stamps)
    processed: int = 0
    correct_t: list[float] = field(default_factory=list)  # time of each frame with a known label
    correct: list[bool] = field(default_factory=list)


@dataclass
class RunLog:
    """Everything the report plots; the evaluator node appends, :func:`write_report` reads."""

    apps: dict[str, AppSeries] = field(default_factory=lambda: defaultdict(AppSeries))
    targets: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    platform_t: list[float] = field(default_factory=list)
    freq_hz: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    power_w: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    temp_c: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    energy_j: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    # per app: (from, to) of each stretch it ran without a manager; to is None while it lasts
    unmanaged: dict[str, list[tuple[float, float | None]]] = field(default_factory=lambda: defaultdict(list))
    # per app: (from, to, cause) of each stretch the manager said its target is infeasible; to is None while it lasts
    infeasible: dict[str, list[tuple[float, float | None, str]]] = field(default_factory=lambda: defaultdict(list))
    simulated: bool | None = None
    board: str = ""

    def set_managed(self, app_id: str, t: float, managed: bool) -> None:
        """The app's report at ``t`` says whether a manager runs it; a change opens or closes an unmanaged
        stretch and marks an event on every plot."""
        spans = self.unmanaged[app_id]
        absent = bool(spans) and spans[-1][1] is None
        if not managed and not absent:
            spans.append((t, None))
            self.events.append((t, f"{app_id} unmanaged"))
        elif managed and absent:
            spans[-1] = (spans[-1][0], t)
            self.events.append((t, f"{app_id} managed again"))

    def set_infeasible(self, app_id: str, t: float, cause: str | None) -> None:
        """The manager says at ``t`` that the app's target is infeasible for ``cause`` (None: feasible); a change
        closes the open stretch and opens a new one."""
        spans = self.infeasible[app_id]
        now = spans[-1][2] if spans and spans[-1][1] is None else None
        if cause == now:
            return
        if now is not None:
            spans[-1] = (spans[-1][0], t, now)
        if cause is not None:
            spans.append((t, None, cause))

    def add_platform(self, t: float, freqs: dict[str, float], power: dict[str, float], temps: dict[str, float],
                     energy_j: float) -> None:
        """One platform sample; a key missing from a later sample is filled with NaN."""
        self.platform_t.append(t)
        for store, values in ((self.freq_hz, freqs), (self.power_w, power), (self.temp_c, temps)):
            for k in set(store) | set(values):
                store[k].extend([math.nan] * (len(self.platform_t) - 1 - len(store[k])))
                store[k].append(float(values.get(k, math.nan)))
        self.energy_j.append(energy_j)


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"n": 0}
    return {"n": int(a.size), "mean": float(a.mean()), "p50": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


def _miss_rate(judged: list[tuple[float, float, float]], events: list[float], settle_s: float = 0.0) -> float | None:
    """Share of the (t, latency, limit) frames over their limit, leaving out those less than ``settle_s`` after
    an event; None without frames."""
    kept = [(lat, lim) for t, lat, lim in judged if not any(0.0 <= t - e < settle_s for e in events)]
    return (sum(lat > lim for lat, lim in kept) / len(kept)) if kept else None


def _target_at(targets: list[tuple[float, float]], t: float) -> float:
    value = math.nan
    for since, limit in targets:
        if since <= t:
            value = limit
    return value


def summarise(log: RunLog, duration_s: float) -> dict[str, Any]:
    """The JSON summary: per app latency statistics, target misses (all, and outside the ``SETTLE_S`` after each
    event; frames in a stretch the manager declared the target infeasible counted apart), levels, accuracy, time
    without a manager; board energy and power."""
    apps: dict[str, Any] = {}
    events = [t for t, _ in log.events]
    for app_id, s in sorted(log.apps.items()):
        spans = [(a, duration_s if b is None else b) for a, b in log.unmanaged.get(app_id, [])]
        limits = [_target_at(log.targets.get(app_id, []), t) for t in s.t]
        judged = [(t, lat, lim) for t, lat, lim in zip(s.t, s.latency_s, limits, strict=True) if math.isfinite(lim)]
        hopeless = [(a, math.inf if b is None else b) for a, b, _ in log.infeasible.get(app_id, [])]
        flags = [any(a <= t < b for a, b in hopeless) for t, _, _ in judged]
        apart = [j for j, f in zip(judged, flags, strict=True) if f]
        judged = [j for j, f in zip(judged, flags, strict=True) if not f]
        levels, counts = np.unique(np.asarray(s.level, dtype=int), return_counts=True)
        apps[app_id] = {
            "frames_processed": s.processed, "frames_dropped": s.dropped, "frames_lost": s.lost,
            "latency_s": _stats(s.latency_s),
            "target_miss_rate": _miss_rate(judged, events),
            "target_miss_rate_settled": _miss_rate(judged, events, SETTLE_S),
            "frames_infeasible": len(apart),
            "infeasible_misses": sum(lat > lim for _, lat, lim in apart),
            "infeasible": [{"from_s": a, "to_s": b, "cause": c} for a, b, c in log.infeasible.get(app_id, [])],
            "level_share": {int(lv): float(c / max(1, len(s.level))) for lv, c in zip(levels, counts)},
            "level_switches": int(np.count_nonzero(np.diff(np.asarray(s.level, dtype=int)))) if s.level else 0,
            "live_accuracy": (sum(s.correct) / len(s.correct)) if s.correct else None,
            "labelled_frames": len(s.correct),
            "targets": [{"since_s": a, "max_latency_s": b} for a, b in log.targets.get(app_id, [])],
            "unmanaged": [{"from_s": a, "to_s": b} for a, b in log.unmanaged.get(app_id, [])],
            "unmanaged_s": sum(b - a for a, b in spans),
        }
    energy = [e for e in log.energy_j if math.isfinite(e)]
    return {
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": duration_s,
        "board": log.board, "simulated": log.simulated,
        "note": "SIMULATED board: frequencies, power, temperatures and energy are model outputs"
        if log.simulated else "",
        "apps": apps,
        "board_energy_j": (energy[-1] - energy[0]) if len(energy) > 1 else None,
        "board_power_w": {r: _stats(v) for r, v in sorted(log.power_w.items())},
        "events": [{"t_s": t, "what": w} for t, w in log.events],
    }


def _plot(path: Path, title: str, series: list[tuple[str, list[float], list[float], str]], ylabel: str,
          events: list[tuple[float, str]], sim: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    for label, x, y, style in series:
        if style == "step":
            ax.step(x, y, where="post", label=label)
        elif style == "dots":
            ax.plot(x, y, ".", markersize=2, label=label)
        else:
            ax.plot(x, y, label=label)
    for t, what in events:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.annotate(what, (t, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90, va="top")
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (" (SIMULATED board)" if sim else ""))
    if series:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(run_dir: str | Path, log: RunLog, duration_s: float,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``summary.json`` and the plots into ``run_dir``; return the summary (with the file names)."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(log, duration_s)
    summary.update(extra or {})
    sim = bool(log.simulated)
    ev = log.events
    lat = []
    for app_id, s in sorted(log.apps.items()):
        lat.append((f"{app_id} latency", s.t, [v * 1e3 for v in s.latency_s], "dots"))
        tg = log.targets.get(app_id, [])
        if tg:
            end = max(s.t[-1] if s.t else 0.0, duration_s)
            lat.append((f"{app_id} target", [a for a, _ in tg] + [end], [b * 1e3 for _, b in tg] + [tg[-1][1] * 1e3],
                        "step"))
    plots = [_plot(out / "latency.png", "Latency vs target", lat, "latency [ms]", ev, sim),
             _plot(out / "level.png", "Active subnet level",
                   [(a, s.t, s.level, "step") for a, s in sorted(log.apps.items())], "level (0 = fastest)", ev, sim),
             _plot(out / "frequency.png", "DVFS frequencies",
                   [(d, log.platform_t, [f / 1e6 for f in v], "step") for d, v in sorted(log.freq_hz.items())],
                   "frequency [MHz]", ev, sim),
             _plot(out / "power.png", "Power per rail",
                   [(r, log.platform_t, v, "line") for r, v in sorted(log.power_w.items())], "power [W]", ev, sim)]
    acc = []
    for app_id, s in sorted(log.apps.items()):
        if s.correct:
            running = np.cumsum(s.correct) / np.arange(1, len(s.correct) + 1)
            acc.append((f"{app_id} live top-1 (cumulative)", s.correct_t, list(running), "line"))
        acc.append((f"{app_id} expected top-1 of level", s.t, s.expected_accuracy, "step"))
    plots.append(_plot(out / "accuracy.png", "Accuracy over time", acc, "top-1", ev, sim))
    summary["plots"] = [p.name for p in plots]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return summary


def new_run_dir(root: str | Path = "runs") -> Path:
    """``<root>/<UTC timestamp>`` (created)."""
    path = Path(root) / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path
