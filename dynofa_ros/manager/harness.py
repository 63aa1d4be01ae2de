"""Run a policy through a scenario on the simulated Xavier NX and measure it.

Each app's camera ticks at its rate; a frame is submitted at a tick when the app's previous frame has
finished (otherwise the tick is dropped and counted). The policy is called every ``period_s`` (its own,
e.g. a governor's 10 ms sampling, or the scenario's control period) with the frames finished since its
last call; its level commands take effect at the next frame and its DVFS settings at once. The ``oracle``
policy is planned from the whole scenario (:mod:`dynofa_ros.manager.oracle`) and played back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dynofa_ros.manager.controller import ControllerConfig
from dynofa_ros.manager.models import AppSpec, BoardModel, LevelPoint
from dynofa_ros.manager.oracle import ORACLE, OraclePolicy, plan_oracle
from dynofa_ros.manager.policy import Policy, make_policy
from dynofa_ros.manager.records import AppReport, AppTarget
from dynofa_ros.manager.scenarios import LoadChange, Scenario, TargetChange
from dynofa_ros.manager.simmodel import SimBoardModel
from dynofa_ros.platform.sim.board import SimulatedBoard

GOVERNOR_PERIOD_S = 0.01
STEADY_SETTLE_S = 2.0  # after the start and after every event, changes within this long are transitions


@dataclass
class AppMetrics:
    frames: int = 0
    dropped: int = 0
    misses: int = 0
    infeasible_ticks: int = 0  # frames and dropped ticks while the policy said the target is infeasible
    infeasible_misses: int = 0  # late frames and dropped ticks among them
    energy_j: float = 0.0  # dynamic energy attributed to this app's frames by the board
    accuracy_sum: float = 0.0
    latencies: list[tuple[float, float, float]] = field(default_factory=list)  # (end time, latency, target)

    @property
    def miss_rate(self) -> float:
        """Late frames plus dropped camera ticks (never processed), over all ticks."""
        ticks = self.frames + self.dropped
        return (self.misses + self.dropped) / ticks if ticks else math.nan

    @property
    def mean_accuracy(self) -> float:
        return self.accuracy_sum / self.frames if self.frames else math.nan


@dataclass(frozen=True)
class KnobChange:
    """A level, frequency or online-core change the policy made (``knob``: ``level:<app>``, ``freq:<domain>``,
    ``cores:<domain>``), at ``t_s`` since the start."""

    t_s: float
    knob: str
    old: float
    new: float


@dataclass
class RunResult:
    """What one (scenario, policy) run measured. ``energy_j`` is the board total (VDD_IN)."""

    scenario: str
    policy: str
    duration_s: float
    energy_j: float
    peak_temp_c: float
    throttled_s: float
    apps: dict[str, AppMetrics]
    changes: list[KnobChange]
    event_times_s: tuple[float, ...]  # the scenario's events
    gives_way: dict[str, int]
    trace: dict[str, list[tuple[float, float]]]  # series name -> (t, value)

    @property
    def level_changes(self) -> int:
        return sum(c.knob.startswith("level:") for c in self.changes)

    @property
    def freq_changes(self) -> int:
        return sum(c.knob.startswith("freq:") for c in self.changes)

    def steady_changes(self, settle_s: float = STEADY_SETTLE_S) -> list[KnobChange]:
        """The changes made in steady state: ``settle_s`` or more after the start and after every event."""
        return [c for c in self.changes
                if c.t_s >= settle_s and all(not 0 <= c.t_s - e < settle_s for e in self.event_times_s)]

    def steady_reversals(self, settle_s: float = STEADY_SETTLE_S) -> int:
        """Steady-state changes that move a knob back the way its previous change, also in steady state and with
        no event in between, moved it (up after down, or down after up): the oscillations among the changes."""
        steady = set(self.steady_changes(settle_s))
        last: dict[str, KnobChange] = {}
        count = 0
        for c in self.changes:
            before = last.get(c.knob)
            if c in steady and before in steady and (c.new > c.old) != (before.new > before.old):
                count += not any(before.t_s < e <= c.t_s for e in self.event_times_s)
            last[c.knob] = c
        return count

    def steady_changes_per_min(self, settle_s: float = STEADY_SETTLE_S) -> float:
        """Changes per minute of steady state (the time outside the settling windows)."""
        marks = sorted({0.0, *self.event_times_s})
        ends = [*marks[1:], self.duration_s]
        steady = sum(max(0.0, end - (m + settle_s)) for m, end in zip(marks, ends, strict=True))
        return len(self.steady_changes(settle_s)) / steady * 60.0 if steady > 0 else math.nan

    @property
    def frames(self) -> int:
        return sum(a.frames for a in self.apps.values())

    @property
    def ticks(self) -> int:
        """Camera ticks of all apps: frames run plus ticks dropped."""
        return sum(a.frames + a.dropped for a in self.apps.values())

    @property
    def miss_rate(self) -> float:
        """Late frames plus dropped camera ticks, over all ticks of all apps."""
        missed = sum(a.misses + a.dropped for a in self.apps.values())
        return missed / self.ticks if self.ticks else math.nan

    @property
    def mean_accuracy(self) -> float:
        return sum(a.accuracy_sum for a in self.apps.values()) / self.frames if self.frames else math.nan

    @property
    def infeasible_ticks(self) -> int:
        return sum(a.infeasible_ticks for a in self.apps.values())

    @property
    def ordinary_miss_rate(self) -> float:
        """Misses outside the periods the policy declared a target infeasible, over all ticks of all apps."""
        missed = sum(a.misses + a.dropped - a.infeasible_misses for a in self.apps.values())
        return missed / self.ticks if self.ticks else math.nan


@dataclass(frozen=True)
class MiscalibratedModel:
    """A board model whose predictions are off by constant factors: the controller no longer knows the
    simulator exactly (a robustness check of results that use the simulator's own models)."""

    base: BoardModel
    latency_factor: float
    power_factor: float

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        return self.base.latency_s(level, domain, freq_hz, cores) * self.latency_factor

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        return self.base.power_w(domain, freq_hz, util, cores) * self.power_factor


def fixed_levels_for(scenario: Scenario, levels: tuple[LevelPoint, ...], margin: float = 0.05) -> dict[str, int]:
    """The most accurate level per app whose model latency at the top frequency, alone on its domain,
    meets every target the app gets in the scenario with ``margin`` to spare (level 0 if none does)."""
    board = SimulatedBoard.from_config(None, mode=scenario.mode, ambient_c=scenario.ambient_c)
    model = SimBoardModel(board)
    infos = {d.name: d for d in board.domains()}
    out = {}
    for app in scenario.apps:
        info = infos[app.domain]
        limit = min(t.max_latency_s for t in scenario.targets_seen(app.app_id))
        ok = [lv for lv in levels if lv.top1 >= 0 and
              model.latency_s(lv, app.domain, info.frequencies_hz[-1], max(1, len(info.cores))) * (1 + margin) <= limit]
        out[app.app_id] = max(ok, key=lambda lv: lv.top1).index if ok else 0
    return out


def run_scenario(
    scenario: Scenario,
    policy_name: str,
    levels: tuple[LevelPoint, ...],
    *,
    fixed_levels: dict[str, int] | None = None,
    min_accuracy: dict[str, float] | None = None,
    seed: int = 0,
    noise_sigma: float = 0.03,
    label: str | None = None,
    model_error: tuple[float, float] = (1.0, 1.0),
    config: ControllerConfig | None = None,
) -> RunResult:
    """Run ``policy_name`` through ``scenario``; ``min_accuracy`` (app → top-1) overrides targets' floors;
    ``label`` names the run in the result (default ``policy_name``); frame times get log-normal noise of
    sigma ``noise_sigma``; ``model_error`` = (latency, power) factors applied to the policy's board model
    (the simulated frames keep the true model); ``config`` tunes the joint / dvfs-only controller. The
    ``oracle`` knows the scenario, the true model and ``noise_sigma``."""
    board = SimulatedBoard.from_config(None, mode=scenario.mode, ambient_c=scenario.ambient_c, seed=seed,
                                       noise_sigma=noise_sigma)
    if scenario.preheat_s > 0:
        board.idle(scenario.preheat_s)
    t0 = board.now
    domains = board.domains()
    apps = [AppSpec(a.app_id, a.domain, levels, a.rate_hz) for a in scenario.apps]
    zones = board.config.thermal.zones
    model = SimBoardModel(board)
    policy_model: BoardModel = model if model_error == (1.0, 1.0) else MiscalibratedModel(model, *model_error)
    policy: Policy
    if policy_name == ORACLE:
        plan = plan_oracle(scenario, levels, board, min_accuracy=min_accuracy, noise_sigma=noise_sigma)
        policy = OraclePolicy(plan, {a.app_id: a.domain for a in apps})
    else:
        policy = make_policy(
            policy_name, apps, domains, policy_model, fixed_levels=fixed_levels,
            trip_points_c={z.name: z.trip_c for z in zones}, zone_domains={z.name: z.heated_by for z in zones},
            config=config,
        )
    period = GOVERNOR_PERIOD_S if policy_name.startswith("governor:") else scenario.control_period_s

    def floor(t: AppTarget) -> AppTarget:
        if min_accuracy is None or t.app_id not in min_accuracy:
            return t
        return AppTarget(t.app_id, t.max_latency_s, min_accuracy[t.app_id], t.priority, t.weight, t.energy_budget_j)

    targets = {t.app_id: floor(t) for t in scenario.targets}
    events = sorted(scenario.events, key=lambda e: e.at_s)
    metrics = {a.app_id: AppMetrics() for a in apps}
    level = {a.app_id: len(levels) - 1 for a in apps}
    job_info: dict[int, tuple[int, float, bool]] = {}  # job id -> (level, target, infeasible) at submission
    infeasible: set[str] = set()  # apps whose target the policy's last decision called infeasible
    ticks = dict.fromkeys(metrics, 0)
    n_ctrl = 0
    reports: list[AppReport] = []
    trace: dict[str, list[tuple[float, float]]] = {}
    gives_way: dict[str, int] = {}
    start = board.read().domains
    last = {("freq", n): d.cur_hz for n, d in start.items()} | {("cores", n): d.online_cores for n, d in start.items()}
    changes: list[KnobChange] = []
    peak, throttled_s, e0 = -math.inf, 0.0, board.read().energy_j
    end = t0 + scenario.duration_s

    def record(name: str, t: float, v: float) -> None:
        trace.setdefault(name, []).append((t - t0, v))

    while True:
        next_ctrl = t0 + n_ctrl * period
        next_tick = min(t0 + ticks[a.app_id] / a.rate_hz for a in apps)
        next_event = t0 + events[0].at_s if events else math.inf
        now = min(next_ctrl, next_tick, next_event, end)
        for r in board.advance_to(now):
            lvl, limit, hopeless = job_info.pop(r.job_id)
            m = metrics[r.app_id]
            m.frames += 1
            m.misses += r.latency_s > limit
            m.infeasible_ticks += hopeless
            m.infeasible_misses += hopeless and r.latency_s > limit
            m.energy_j += r.energy_j
            m.accuracy_sum += levels[lvl].top1
            m.latencies.append((r.end_s - t0, r.latency_s, limit))
            reports.append(AppReport(r.app_id, r.end_s, lvl, r.latency_s, levels[lvl].top1, r.domain, r.energy_j))
        if now >= end:
            break
        while events and t0 + events[0].at_s <= now:
            ev = events.pop(0)
            if isinstance(ev, TargetChange):
                targets[ev.target.app_id] = floor(ev.target)
            elif isinstance(ev, LoadChange):
                board.set_load(ev.domain, ev.fraction)
        if now >= next_ctrl:
            n_ctrl += 1
            state = board.read()
            for name, dom in state.domains.items():
                dom.utilisation = board.utilisation(name, period)
            peak = max([peak, *state.temperatures_c.values()])
            throttled_s += period * any(state.throttled.values())
            decision = policy.update(now - t0, reports, dict(targets), state)
            reports = []
            result = board.apply(decision.dvfs)
            if result.refused:
                raise RuntimeError(f"{policy_name}: board refused {result.refused}")
            for s in decision.dvfs:
                for knob, value in (("freq", s.freq_hz), ("cores", s.online_cores)):
                    old = last.get((knob, s.domain))
                    if value is not None and old != value:
                        changes.append(KnobChange(now - t0, f"{knob}:{s.domain}", old, value))
                        last[(knob, s.domain)] = value
            for app_id, cmd in decision.levels.items():
                if cmd.level != level[app_id]:
                    changes.append(KnobChange(now - t0, f"level:{app_id}", level[app_id], cmd.level))
                level[app_id] = cmd.level
            infeasible = set(decision.infeasible)
            for app_id in decision.gives_way:
                gives_way[app_id] = gives_way.get(app_id, 0) + 1
            if n_ctrl % max(1, round(0.1 / period)) == 0:  # traces at 10 Hz
                for name in {a.domain for a in apps}:
                    record(f"freq_mhz:{name}", now, board.effective_hz(name) / 1e6)
                for app_id, lvl in level.items():
                    record(f"level:{app_id}", now, lvl)
                record("power_w", now, state.power_w.get("VDD_IN", math.nan))
                record("temp_c", now, max(state.temperatures_c.values()))
        for a in apps:
            while t0 + ticks[a.app_id] / a.rate_hz <= now:
                ticks[a.app_id] += 1
                hopeless = a.app_id in infeasible
                if board.is_running(a.app_id):
                    m = metrics[a.app_id]
                    m.dropped += 1
                    m.infeasible_ticks += hopeless
                    m.infeasible_misses += hopeless
                    continue
                lv = levels[level[a.app_id]]
                job = board.submit(a.app_id, a.domain, model.work(lv, a.domain))
                job_info[job] = (level[a.app_id], targets[a.app_id].max_latency_s, hopeless)
    energy = board.read().energy_j - e0
    return RunResult(scenario.name, label or policy_name, scenario.duration_s, energy, peak, throttled_s, metrics,
                     changes, tuple(e.at_s for e in scenario.events), gives_way, trace)


@dataclass(frozen=True)
class GoalCheck:
    """Energy saving of a policy against the best governor, at an equal or lower miss rate."""

    scenario: str
    policy: str
    governor: str
    saving: float  # 1 - E_policy / E_governor
    goal: float
    miss_policy: float
    miss_governor: float
    miss_tolerance: float

    @property
    def passed(self) -> bool:
        return self.saving >= self.goal and self.miss_policy <= self.miss_governor + self.miss_tolerance


def best_governor(results: list[RunResult], max_miss: float = 0.05) -> RunResult:
    """The lowest-energy governor run whose miss rate is at most ``max_miss`` (else the lowest miss rate)."""
    govs = [r for r in results if r.policy.startswith("governor:")]
    if not govs:
        raise ValueError("no governor runs to compare against")
    ok = [r for r in govs if r.miss_rate <= max_miss]
    return min(ok, key=lambda r: r.energy_j) if ok else min(govs, key=lambda r: (r.miss_rate, r.energy_j))


def check_goal(run: RunResult, governor: RunResult, goal: float, miss_tolerance: float = 0.01) -> GoalCheck:
    """Compare ``run`` with ``governor`` (same scenario) against an energy-saving ``goal`` (fraction)."""
    if run.scenario != governor.scenario:
        raise ValueError(f"runs of different scenarios: {run.scenario} vs {governor.scenario}")
    return GoalCheck(run.scenario, run.policy, governor.policy, 1.0 - run.energy_j / governor.energy_j, goal,
                     run.miss_rate, governor.miss_rate, miss_tolerance)


@dataclass(frozen=True)
class OracleCheck:
    """A policy's energy and misses against the oracle's (same scenario and accuracy floor): within
    ``max_ratio`` of its energy at no more misses than its own plus ``miss_tolerance``."""

    scenario: str
    policy: str
    oracle: str
    energy_ratio: float  # E_policy / E_oracle
    miss_policy: float
    miss_oracle: float
    max_ratio: float
    miss_tolerance: float

    @property
    def passed(self) -> bool:
        return self.energy_ratio <= self.max_ratio and self.miss_policy <= self.miss_oracle + self.miss_tolerance


def check_oracle(run: RunResult, oracle: RunResult, max_ratio: float = 1.05,
                 miss_tolerance: float = 0.01) -> OracleCheck:
    """Compare ``run`` with the ``oracle`` run of the same scenario."""
    if run.scenario != oracle.scenario:
        raise ValueError(f"runs of different scenarios: {run.scenario} vs {oracle.scenario}")
    return OracleCheck(run.scenario, run.policy, oracle.policy, run.energy_j / oracle.energy_j, run.miss_rate,
                       oracle.miss_rate, max_ratio, miss_tolerance)
