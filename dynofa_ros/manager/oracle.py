"""The oracle: a scenario's minimum-energy schedule, planned with full knowledge of the trace (every target change
and load change, when it comes) and of the simulated board's true latency and power. No causal controller can
plan better at the same miss risk; the benchmark reports every policy against it.

Method: exhaustive search. The scenario's events cut the run into segments in which targets and loads are
constant. In each segment, for each app, every setting of its domain is evaluated: every level allowed by the
accuracy floor × every frequency of the domain × every online-core count (CPU clusters), with

- latency: the simulator's frame time (:class:`SimBoardModel`, the board's own work model), stretched by a known
  competing load (the board shares a domain's threads in proportion to demand);
- misses: the board's per-frame work noise is log-normal with a known sigma, so a setting whose noise-free
  latency equals the target misses half its frames; the expected misses per camera tick (late frames plus ticks
  dropped because a frame outlasted the camera period, :func:`expected_miss_rate`) must be at most
  ``miss_risk``;
- energy: the domain's static power at that core count plus everything its expected utilisation adds to the
  board total VDD_IN (dynamic power and memory-controller activity), from the board's power model.

The setting of least power among those within the miss risk is taken; when none is (the target is infeasible
there), the one with the fewest expected misses. The per-app minima add up to the schedule's minimum because the
board total is a sum of per-domain terms plus the memory controller's ``min(1, Σ weight · utilisation)``: apps
must run on distinct domains, and the planner checks that this sum stays below 1 even with every app domain
fully busy (else it refuses). Domains no app runs on are parked as the joint controller parks them (lowest
frequency; clusters without cpu0 offline unless the scenario loads them). Thermal throttling is not planned for:
a schedule the hardware throttles shows it in the run's throttled time.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from dynofa_ros.manager.controller import parked_setting
from dynofa_ros.manager.models import LevelPoint, expected_miss_rate
from dynofa_ros.manager.records import AppReport, AppTarget, Decision, Infeasible, LevelCommand
from dynofa_ros.manager.scenarios import LoadChange, Scenario, TargetChange
from dynofa_ros.manager.simmodel import SimBoardModel
from dynofa_ros.platform.sim.board import SimulatedBoard
from dynofa_ros.platform.types import DvfsSetting, PlatformState

ORACLE = "oracle"
ORACLE_MISS_RISK = 0.01  # expected misses per camera tick the oracle allows itself


@dataclass(frozen=True)
class OracleChoice:
    """One app's setting in one segment and its predicted outcome."""

    level: int
    freq_hz: int
    cores: int | None  # online cores of a CPU cluster; None on the GPU
    latency_s: float  # noise-free, with the segment's load
    miss_rate: float  # expected misses per camera tick
    power_w: float  # the domain's static power plus what its expected utilisation adds to VDD_IN
    feasible: bool  # within the miss risk


@dataclass(frozen=True)
class OracleSegment:
    start_s: float
    end_s: float
    choices: dict[str, OracleChoice]


@dataclass(frozen=True)
class OraclePlan:
    """The schedule: per segment, each app's setting; the parked settings of the other domains."""

    segments: tuple[OracleSegment, ...]
    parked: tuple[DvfsSetting, ...]
    settings_evaluated: int
    miss_risk: float

    def segment_at(self, t_s: float) -> OracleSegment:
        return next((s for s in self.segments if s.start_s <= t_s < s.end_s), self.segments[-1])


def _segments(scenario: Scenario) -> list[tuple[float, float, dict[str, AppTarget], dict[str, float]]]:
    """(start, end, targets, loads) with everything constant in between."""
    events = sorted(scenario.events, key=lambda e: e.at_s)
    cuts = sorted({0.0, *(e.at_s for e in events if 0.0 < e.at_s < scenario.duration_s), scenario.duration_s})
    targets = {t.app_id: t for t in scenario.targets}
    loads: dict[str, float] = {}
    out = []
    for start, end in itertools.pairwise(cuts):
        for e in (e for e in events if e.at_s <= start):
            if isinstance(e, TargetChange):
                targets[e.target.app_id] = e.target
            elif isinstance(e, LoadChange):
                loads[e.domain] = e.fraction
        out.append((start, end, dict(targets), dict(loads)))
        events = [e for e in events if e.at_s > start]
    return out


def plan_oracle(
    scenario: Scenario,
    levels: tuple[LevelPoint, ...],
    board: SimulatedBoard,
    *,
    min_accuracy: Mapping[str, float] | None = None,
    noise_sigma: float = 0.0,
    miss_risk: float = ORACLE_MISS_RISK,
) -> OraclePlan:
    """The minimum-energy schedule of ``scenario`` on ``board`` (its mode and online cores as they are now);
    ``min_accuracy`` (app → top-1) overrides the targets' floors; ``noise_sigma`` is the board's per-frame
    log-normal work noise. ValueError when the apps share a domain or the memory term couples their domains."""
    model = SimBoardModel(board)
    infos = {d.name: d for d in board.domains()}
    online = {name: st.online_cores for name, st in board.read().domains.items()}
    app_domains = [a.domain for a in scenario.apps]
    if len(set(app_domains)) != len(app_domains):
        raise ValueError(f"the oracle plans apps on distinct domains; {scenario.name} shares one: {app_domains}")
    weights = board.config.power.mem_weight
    if sum(weights[infos[d].kind] for d in app_domains) >= 1.0:
        raise ValueError(f"{scenario.name}: memory activity of {app_domains} saturates; the per-domain search "
                         "would not be exact")
    floors = dict(min_accuracy or {})
    segments, evaluated = [], 0
    for start, end, targets, loads in _segments(scenario):
        choices = {}
        for app in scenario.apps:
            target = targets[app.app_id]
            floor = floors.get(app.app_id, target.min_accuracy)
            allowed = [lv for lv in levels if lv.top1 >= floor] or [max(levels, key=lambda lv: lv.top1)]
            info = infos[app.domain]
            cores_opts = list(range(1, online[app.domain] + 1)) if info.kind == "cpu" else [None]
            load = loads.get(app.domain, 0.0)
            options = []
            for lv, f, n in itertools.product(allowed, info.frequencies_hz, cores_opts):
                latency = model.latency_s(lv, app.domain, f, n or 1, load)
                miss = expected_miss_rate(latency, target.max_latency_s, 1.0 / app.rate_hz, noise_sigma)
                duty = min(1.0, latency * app.rate_hz)
                power = model.power_w(app.domain, f, duty + load * (1.0 - duty), n or 1)
                options.append(OracleChoice(lv.index, f, n, latency, miss, power, miss <= miss_risk))
            evaluated += len(options)
            ok = [c for c in options if c.feasible]
            choices[app.app_id] = (min(ok, key=lambda c: c.power_w) if ok else
                                   min(options, key=lambda c: (c.miss_rate, c.power_w)))
        segments.append(OracleSegment(start, end, choices))
    loaded = {e.domain for e in scenario.events if isinstance(e, LoadChange)}
    parked = tuple(parked_setting(info, name not in loaded) for name, info in sorted(infos.items())
                   if name not in app_domains and info.frequencies_hz)
    return OraclePlan(tuple(segments), parked, evaluated, miss_risk)


@dataclass
class OraclePolicy:
    """Plays an :class:`OraclePlan` back: the segment's settings at every control period (time since the start);
    a segment whose target no setting meets within the miss risk is marked infeasible."""

    plan: OraclePlan
    app_domains: dict[str, str]

    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision:
        seg = self.plan.segment_at(now_s)
        d = Decision(dvfs=list(self.plan.parked))
        for app_id, c in seg.choices.items():
            why = (f"oracle: level {c.level} at {c.freq_hz / 1e6:.0f} MHz, predicted {c.latency_s * 1e3:.1f} ms, "
                   f"expected miss {c.miss_rate:.1%}")
            d.levels[app_id] = LevelCommand(c.level, why)
            d.reasons[app_id] = why
            d.power_w[app_id] = c.power_w
            d.dvfs.append(DvfsSetting(self.app_domains[app_id], c.freq_hz, c.cores))
            if not c.feasible:
                d.infeasible[app_id] = Infeasible(f"no setting within {self.plan.miss_risk:.0%} expected misses",
                                                  f"{app_id}: fewest expected misses {c.miss_rate:.1%}")
        return d
