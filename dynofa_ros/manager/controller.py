"""The predictive joint controller: sub-network level + domain frequency + cores, for several apps.

Each control period, for every app it predicts the latency of every candidate (level, frequency, cores)
with the board model, scaled by the app's Kalman slowdown bound ``mean + z·std`` (std: the next frame's, the
estimate's uncertainty plus the frame-to-frame noise the filter has learned), which must fit both the target
and the camera period; it predicts the domain's power from the summed utilisation; and it picks, per domain,
the assignment ranked by (latency/accuracy shortfall per priority class, highest first; then power plus
switching cost). When every target can be met the shortfall is zero and the cheapest assignment wins; when
not, the lowest-ranked apps give way first and the decision says so. An app whose target no setting is
predicted to meet even with its domain to itself is marked infeasible with the cause, and runs its best effort.

Steady state: a new assignment must meet the targets at ``confidence_z``; the current one is kept while it meets
them at the laxer ``keep_z`` (a Schmitt trigger on the estimate's noise), and until another has been predicted to
save more than ``hysteresis`` of its power in consecutive periods for long enough that the predicted saving
(fraction × seconds) reaches ``hysteresis × dwell_s``. A change is thus made when the prediction says the current
assignment will miss, or that another pays; a target change gives up the privilege, so the controller re-plans
at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from dynofa_ros.manager.kalman import SlowdownFilter
from dynofa_ros.manager.models import AppSpec, BoardModel, contention_factor, serve_order
from dynofa_ros.manager.records import AppReport, AppTarget, Decision, Infeasible, LevelCommand, validate_targets
from dynofa_ros.manager.thermal import ThermalGuard
from dynofa_ros.platform.types import DomainInfo, DvfsSetting, PlatformState


@dataclass(frozen=True)
class ControllerConfig:
    """Tuning knobs of :class:`JointController`."""

    confidence_z: float = 2.2  # a new assignment's latency bound: slowdown mean + z·std (1.4 % of frames over it)
    keep_z: float = 2.0  # the current assignment stays while it meets the targets at this bound (2.3 % over)
    max_util: float = 1.0  # an app busier than this at its bound (with the apps served before it) drops frames
    switch_cost_w: float = 0.02  # power-equivalent penalty per changed knob (level, frequency, cores)
    hysteresis: float = 0.05  # keep a target-meeting assignment unless another saves more than this
    dwell_s: float = 5.0  # ... until its saving, summed over the periods in a row, reaches hysteresis × dwell_s
    tune_cores: bool = True  # also choose the number of online cores of CPU domains
    accuracy_weight_w: float = 0.0  # W one unit of top-1 is worth (0: pure energy under min_accuracy)
    settle_s: float = 0.005  # reports stamped less than this after a seen DVFS change are not trusted
    judge_frames: int = 30  # an app's target is called infeasible only once its slowdown rests on this many frames
    park_idle: bool = True  # domains no app runs on (and no known load) go to their lowest frequency
    park_cores: bool = True  # ... and CPU clusters without cpu0 take their cores offline
    park_max_util: float = 0.05  # a measured utilisation above this is a known load: do not park

    def __post_init__(self) -> None:
        for name in ("confidence_z", "keep_z", "switch_cost_w", "hysteresis", "dwell_s", "accuracy_weight_w",
                     "settle_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"ControllerConfig.{name} must be finite and >= 0, got {v}")
        if self.keep_z > self.confidence_z:
            raise ValueError(f"ControllerConfig.keep_z must be <= confidence_z {self.confidence_z}, got {self.keep_z}")
        if not 0 < self.max_util <= 1:
            raise ValueError(f"ControllerConfig.max_util must be in (0, 1], got {self.max_util}")
        if not 0 <= self.park_max_util <= 1:
            raise ValueError(f"ControllerConfig.park_max_util must be in [0, 1], got {self.park_max_util}")
        if self.judge_frames < 0:
            raise ValueError(f"ControllerConfig.judge_frames must be >= 0, got {self.judge_frames}")


def parked_setting(info: DomainInfo, park_cores: bool = True) -> DvfsSetting:
    """Where an idle domain is parked: its lowest frequency and, with ``park_cores``, no online cores for a CPU
    cluster that does not hold cpu0 (the cluster holding cpu0 keeps its cores: the system runs there)."""
    offline = park_cores and info.kind == "cpu" and bool(info.cores) and 0 not in info.cores
    return DvfsSetting(info.name, info.frequencies_hz[0], 0 if offline else None)


def _rank(t: AppTarget) -> tuple[float, float, str]:
    return serve_order(t.priority, t.weight, t.app_id)


@dataclass
class _Choice:
    """One domain's assignment and its predicted outcome."""

    freq_idx: int
    cores: int
    levels: dict[str, int]
    shortfall: tuple[float, ...]
    power_w: float
    app_power_w: dict[str, float]
    upper_latency_s: dict[str, float]
    busy: dict[str, float]

    def key(self, switch_penalty: float, accuracy_bonus: float) -> tuple[tuple[float, ...], float]:
        return (tuple(round(s, 6) for s in self.shortfall), self.power_w + switch_penalty - accuracy_bonus)


@dataclass
class JointController:
    """Joint level + DVFS (+ cores) controller with per-app Kalman slowdown and priority arbitration.

    ``allowed_levels`` restricts the level choice per app (the DVFS-only baseline pins one level);
    ``fixed_freq`` pins a domain's frequency (Hz) instead of searching it.
    """

    apps: Sequence[AppSpec]
    domains: Sequence[DomainInfo]
    model: BoardModel
    config: ControllerConfig = field(default_factory=ControllerConfig)
    thermal: ThermalGuard | None = None
    allowed_levels: dict[str, tuple[int, ...]] | None = None
    fixed_freq: dict[str, int] | None = None
    filters: dict[str, SlowdownFilter] = field(init=False)

    def __post_init__(self) -> None:
        self._apps = {a.app_id: a for a in self.apps}
        if len(self._apps) != len(self.apps):
            raise ValueError("duplicate app_id in apps")
        self._domains = {d.name: d for d in self.domains}
        for app in self.apps:
            if app.domain not in self._domains:
                raise ValueError(f"app {app.app_id!r} runs on unknown domain {app.domain!r}")
            if not self._domains[app.domain].frequencies_hz:
                raise ValueError(f"domain {app.domain!r} lists no frequencies: cannot plan DVFS on it")
        for app_id, allowed in (self.allowed_levels or {}).items():
            if app_id not in self._apps:
                raise ValueError(f"allowed_levels names unknown app {app_id!r}")
            n = len(self._apps[app_id].levels)
            if not allowed or any(not 0 <= i < n for i in allowed):
                raise ValueError(f"allowed_levels[{app_id!r}] must be non-empty indices in 0..{n - 1}")
        self.filters = {a: SlowdownFilter() for a in self._apps}
        self._current: dict[str, _Choice] = {}
        self._planned_for: dict[str, AppTarget] = {}  # app -> the target its current assignment was chosen for
        self._saving: dict[str, float] = {}  # domain -> predicted saving (fraction × s) of cheaper assignments
        self._last_update_s: float | None = None
        self._targets: dict[str, AppTarget] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # domain -> (freq, cores) in the last platform state
        self._changed_at: dict[str, float] = {}  # domain -> stamp of the first state showing its new setting
        self._parked: dict[str, DvfsSetting] = {}  # idle domain -> the setting it was parked at

    # -- online estimation -------------------------------------------------------------------------
    def observe(self, reports: Sequence[AppReport], platform: PlatformState) -> None:
        """Update each app's slowdown from frame reports, predicting at the platform's current setting.

        Reports stamped before the first platform state that showed the domain's current setting (plus
        ``settle_s``) may have run at the previous setting: they are skipped, not read as a slowdown.
        """
        self._note_setting_changes(platform)
        for r in reports:
            app = self._apps.get(r.app_id)
            if app is None:
                raise ValueError(f"report from unknown app {r.app_id!r}; known apps: {sorted(self._apps)}")
            if r.level >= len(app.levels):
                raise ValueError(f"report from {r.app_id!r} names level {r.level}, app has {len(app.levels)}")
            domain = r.device or app.domain
            if r.stamp_s < self._changed_at.get(domain, -math.inf) + self.config.settle_s:
                continue
            freq, cores = self._setting_now(domain, platform)
            predicted = self.model.latency_s(app.levels[r.level], domain, freq, cores) * self._contention(app)
            self.filters[r.app_id].update(r.latency_s, predicted)

    def _note_setting_changes(self, platform: PlatformState) -> None:
        for name in (n for n, info in self._domains.items() if info.frequencies_hz):
            setting = self._setting_now(name, platform)
            if self._seen.get(name, setting) != setting:
                self._changed_at[name] = platform.stamp_s
            self._seen[name] = setting

    def _contention(self, app: AppSpec) -> float:
        """The inflation the last decision predicted for ``app`` from higher-ranked apps on its domain."""
        choice = self._current.get(app.domain)
        if choice is None or app.app_id not in self._targets:
            return 1.0
        mine = _rank(self._targets[app.app_id])
        above = sum(b for a, b in choice.busy.items() if a in self._targets and _rank(self._targets[a]) < mine)
        return contention_factor(above)

    def _setting_now(self, domain: str, platform: PlatformState) -> tuple[int, int]:
        info = self._domains[domain]
        st = platform.domains.get(domain)
        freq = st.cur_hz if st and st.cur_hz > 0 else info.frequencies_hz[-1]
        cores = st.online_cores if st and st.online_cores > 0 else max(1, len(info.cores))
        return freq, cores

    # -- decision -------------------------------------------------------------------------------------
    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision:
        """One control period: fold in ``reports``, then choose levels and DVFS settings."""
        validate_targets(targets, set(self._apps))
        self.observe(reports, platform)
        self._targets = dict(targets)
        caps = self._thermal_caps(platform)
        ranks = sorted({t.priority for t in targets.values()}, reverse=True)
        decision = Decision()
        dt = 0.0 if self._last_update_s is None else max(0.0, now_s - self._last_update_s)
        self._last_update_s = now_s
        for dom_name in sorted({a.domain for a in self.apps}):
            apps = [a for a in self.apps if a.domain == dom_name and a.app_id in targets]
            if not apps:
                continue
            cap = caps.get(dom_name)
            choice = self._choose_domain(dt, dom_name, apps, targets, ranks, cap)
            self._current[dom_name] = choice
            self._planned_for.update({a.app_id: targets[a.app_id] for a in apps})
            for app in apps:
                why = self._infeasible(app, targets[app.app_id], cap)
                if why is not None:
                    decision.infeasible[app.app_id] = why
            self._emit(decision, dom_name, apps, choice, targets, cap)
        if self.config.park_idle:
            self._park_idle(decision, platform)
        return decision

    def _park_idle(self, decision: Decision, platform: PlatformState) -> None:
        """Lowest frequency (and, for CPU clusters without cpu0, no online cores) for the domains no app runs
        on and that show a measured utilisation of at most ``park_max_util``; a parked domain that shows a load
        (or stops reporting utilisation) gets its top frequency (and cores) back."""
        used = {a.domain for a in self.apps}
        for name, info in sorted(self._domains.items()):
            if name in used or not info.writable or not info.frequencies_hz:
                continue
            st = platform.domains.get(name)
            util = st.utilisation if st is not None else math.nan
            parked = self._parked.get(name)
            if not util <= self.config.park_max_util:  # a load, or unknown utilisation: leave the domain alone
                if parked is not None:
                    del self._parked[name]
                    cores = max(1, len(info.cores)) if parked.online_cores is not None else None
                    decision.dvfs.append(DvfsSetting(name, info.frequencies_hz[-1], cores))
                    decision.reasons[name] = f"load {util:.0%} on {name}, which no app runs on: unparked"
                continue
            if parked is None:
                parked = parked_setting(info, self.config.park_cores)
            at = st is not None and st.cur_hz == parked.freq_hz and parked.online_cores in (None, st.online_cores)
            if name not in self._parked or not at:
                self._parked[name] = parked
                decision.dvfs.append(parked)
                decision.reasons[name] = (f"no app on this domain: parked at {parked.freq_hz / 1e6:.0f} MHz"
                                          f"{', cores offline' if parked.online_cores == 0 else ''}")

    def _thermal_caps(self, platform: PlatformState) -> dict[str, int]:
        if self.thermal is None:
            return {}
        doms = {a.domain: (self._domains[a.domain].kind, len(self._domains[a.domain].frequencies_hz))
                for a in self.apps}
        return self.thermal.update(platform.stamp_s, platform.temperatures_c, doms)

    def _core_options(self, info: DomainInfo) -> list[int]:
        n = max(1, len(info.cores))
        if info.kind != "cpu" or not self.config.tune_cores:
            return [n]
        return list(range(1, n + 1))

    def _level_options(self, app: AppSpec, target: AppTarget) -> list[int]:
        allowed = list((self.allowed_levels or {}).get(app.app_id, range(len(app.levels))))
        meets = [i for i in allowed if app.levels[i].top1 >= target.min_accuracy]
        return meets or [max(allowed, key=lambda i: app.levels[i].top1)]

    def _freq_options(self, info: DomainInfo, cap: int | None) -> list[int]:
        freqs = info.frequencies_hz
        if self.fixed_freq and info.name in self.fixed_freq:
            f = self.fixed_freq[info.name]
            idx = min(range(len(freqs)), key=lambda i: abs(freqs[i] - f))
            return [min(idx, cap) if cap is not None else idx]
        top = len(freqs) - 1 if cap is None else cap
        return list(range(top + 1))

    def _choose_domain(
        self,
        dt: float,
        dom_name: str,
        apps: list[AppSpec],
        targets: dict[str, AppTarget],
        ranks: list[int],
        cap: int | None,
    ) -> _Choice:
        info = self._domains[dom_name]
        level_opts = [self._level_options(a, targets[a.app_id]) for a in apps]
        current = self._current.get(dom_name)
        best: tuple[tuple[tuple[float, ...], float], _Choice] | None = None
        for fi in self._freq_options(info, cap):
            for cores in self._core_options(info):
                lat_by_app = [
                    {i: self.model.latency_s(a.levels[i], dom_name, info.frequencies_hz[fi], cores) for i in opts}
                    for a, opts in zip(apps, level_opts, strict=True)
                ]
                for combo in itertools.product(*level_opts):
                    choice = self._evaluate(info, apps, targets, ranks, fi, cores, combo, lat_by_app,
                                            self.config.confidence_z)
                    key = choice.key(self._switch_penalty(current, choice), self._accuracy_bonus(apps, combo))
                    if best is None or key < best[0]:
                        best = (key, choice)
        assert best is not None
        if current is not None and self._may_keep(current, info, apps, targets, level_opts, cap):
            now = self._evaluate(info, apps, targets, ranks, current.freq_idx, current.cores,
                                 tuple(current.levels[a.app_id] for a in apps), None, self.config.keep_z)
            if now.shortfall <= best[1].shortfall:
                if now.power_w <= best[1].power_w * (1 + self.config.hysteresis):
                    self._saving.pop(dom_name, None)
                    return now
                saved = self._saving[dom_name] = self._saving.get(dom_name, 0.0) + dt * (
                    1.0 - best[1].power_w / now.power_w)
                if saved < self.config.hysteresis * self.config.dwell_s:
                    return now
        self._saving.pop(dom_name, None)
        return best[1]

    def _may_keep(
        self,
        current: _Choice,
        info: DomainInfo,
        apps: list[AppSpec],
        targets: dict[str, AppTarget],
        level_opts: list[list[int]],
        cap: int | None,
    ) -> bool:
        """Whether the current assignment is still a candidate: same apps and targets, allowed levels, under the
        thermal cap, no pinned frequency."""
        if set(current.levels) != {a.app_id for a in apps} or (cap is not None and current.freq_idx > cap):
            return False
        if self.fixed_freq and info.name in self.fixed_freq:
            return False
        if any(self._planned_for.get(a.app_id) != targets[a.app_id] for a in apps):
            return False
        return all(current.levels[a.app_id] in opts for a, opts in zip(apps, level_opts, strict=True))

    def _evaluate(
        self,
        info: DomainInfo,
        apps: list[AppSpec],
        targets: dict[str, AppTarget],
        ranks: list[int],
        fi: int,
        cores: int,
        combo: tuple[int, ...],
        lat_by_app: list[dict[int, float]] | None,
        z: float,
    ) -> _Choice:
        """Predict one assignment with latency bounds at ``z`` standard deviations of each app's slowdown."""
        freq = info.frequencies_hz[fi]
        util = 0.0  # summed over the apps served so far (higher-ranked first)
        upper: dict[str, float] = {}
        busy: dict[str, float] = {}
        per_rank = dict.fromkeys(ranks, 0.0)
        order = sorted(range(len(apps)), key=lambda k: _rank(targets[apps[k].app_id]))
        for k in order:
            app, lvl = apps[k], combo[k]
            t = targets[app.app_id]
            base = lat_by_app[k][lvl] if lat_by_app else self.model.latency_s(app.levels[lvl], info.name, freq, cores)
            filt = self.filters[app.app_id]
            share = contention_factor(util)
            upper[app.app_id] = base * share * filt.upper(z)
            demand = base * share * max(filt.mean, 0.0) * app.rate_hz  # > 1: the camera outpaces the app
            busy[app.app_id] = min(1.0, demand / share)
            overload = max(0.0, util + upper[app.app_id] * app.rate_hz - self.config.max_util)
            util += busy[app.app_id]
            late = max(0.0, upper[app.app_id] / t.max_latency_s - 1.0) + overload
            short_acc = max(0.0, t.min_accuracy - app.levels[lvl].top1)
            per_rank[t.priority] += t.weight * (late + short_acc)
        power = self.model.power_w(info.name, freq, min(1.0, util), cores)
        idle = self.model.power_w(info.name, freq, 0.0, cores)
        app_power = {
            a.app_id: idle / len(apps) + (power - idle) * (busy[a.app_id] / util if util > 0 else 1 / len(apps))
            for a in apps
        }
        return _Choice(fi, cores, {a.app_id: lv for a, lv in zip(apps, combo, strict=True)},
                       tuple(per_rank[r] for r in ranks), power, app_power, upper, busy)

    def _infeasible(self, app: AppSpec, target: AppTarget, cap: int | None) -> Infeasible | None:
        """Why no setting is predicted to meet ``app``'s target even with its domain to itself (None: one is)."""
        info = self._domains[app.domain]
        allowed = list((self.allowed_levels or {}).get(app.app_id, range(len(app.levels))))
        best_acc = max(app.levels[i].top1 for i in allowed)
        if best_acc < target.min_accuracy:
            return Infeasible("accuracy floor above every level",
                              f"{app.app_id}: best top-1 {best_acc:.3f} < floor {target.min_accuracy:.3f}")
        if self.filters[app.app_id].seen < self.config.judge_frames:
            return None
        levels = self._level_options(app, target)
        bound = self.filters[app.app_id].upper(self.config.confidence_z)
        limit = min(target.max_latency_s, self.config.max_util / app.rate_hz)

        def fastest(freq_opts: list[int]) -> float:
            return bound * min(self.model.latency_s(app.levels[i], app.domain, info.frequencies_hz[fi], n)
                               for i in levels for fi in freq_opts for n in self._core_options(info))

        capped = fastest(self._freq_options(info, cap))
        if capped <= limit:
            return None
        if cap is not None and fastest(self._freq_options(info, None)) <= limit:
            cause = "thermal frequency cap"
        elif capped > target.max_latency_s:
            cause = "target below the fastest setting's latency"
        else:
            cause = "frames outlast the camera period at the fastest setting"
        return Infeasible(cause, f"{app.app_id}: fastest setting predicted {capped * 1e3:.1f} ms (bound) vs target "
                                 f"{target.max_latency_s * 1e3:.1f} ms, camera period {1e3 / app.rate_hz:.1f} ms")

    def _switch_penalty(self, current: _Choice | None, choice: _Choice) -> float:
        if current is None:
            return 0.0
        changes = (current.freq_idx != choice.freq_idx) + (current.cores != choice.cores)
        changes += sum(current.levels.get(a) != lv for a, lv in choice.levels.items())
        return self.config.switch_cost_w * changes

    def _accuracy_bonus(self, apps: list[AppSpec], combo: tuple[int, ...]) -> float:
        w = self.config.accuracy_weight_w
        return w * sum(a.levels[i].top1 for a, i in zip(apps, combo, strict=True)) if w else 0.0

    def _emit(
        self,
        decision: Decision,
        dom_name: str,
        apps: list[AppSpec],
        choice: _Choice,
        targets: dict[str, AppTarget],
        cap: int | None,
    ) -> None:
        info = self._domains[dom_name]
        freq = info.frequencies_hz[choice.freq_idx]
        cores = choice.cores if info.kind == "cpu" and self.config.tune_cores else None
        decision.dvfs.append(DvfsSetting(dom_name, freq, cores))
        thermal = cap is not None and cap < len(info.frequencies_hz) - 1
        for app in apps:
            t = targets[app.app_id]
            lvl = choice.levels[app.app_id]
            level = app.levels[lvl]
            bound = choice.upper_latency_s[app.app_id]
            why = (f"{level.name} (top-1 {level.top1:.3f}) at {freq / 1e6:.0f} MHz"
                   f"{f', {choice.cores} cores' if cores else ''}: predicted {bound * 1e3:.1f} ms "
                   f"(slowdown {self.filters[app.app_id].mean:.2f}) vs target {t.max_latency_s * 1e3:.1f} ms")
            if thermal:
                why += f"; thermal cap {info.frequencies_hz[cap] / 1e6:.0f} MHz"
            decision.levels[app.app_id] = LevelCommand(lvl, why)
            decision.reasons[app.app_id] = why
            decision.power_w[app.app_id] = choice.app_power_w[app.app_id]
            if app.app_id in decision.infeasible:
                decision.reasons[app.app_id] += f"; infeasible target ({decision.infeasible[app.app_id].cause})"
            elif (bound > t.max_latency_s or bound * app.rate_hz > self.config.max_util
                  or level.top1 < t.min_accuracy):
                decision.gives_way[app.app_id] = self._give_way_reason(app, apps, targets, thermal, bound)

    @staticmethod
    def _give_way_reason(
        app: AppSpec, apps: list[AppSpec], targets: dict[str, AppTarget], thermal: bool, bound: float
    ) -> str:
        t = targets[app.app_id]
        above = [a.app_id for a in apps if a is not app and
                 (targets[a.app_id].priority, targets[a.app_id].weight) > (t.priority, t.weight)]
        cause = []
        if above:
            cause.append(f"shares {app.domain} with higher-ranked {', '.join(above)}")
        if thermal:
            cause.append("thermal frequency cap")
        if not cause:
            cause.append("target unreachable even at the fastest setting")
        return (f"{app.app_id} (priority {t.priority}, weight {t.weight:g}) gives way: {'; '.join(cause)}; "
                f"predicted {bound * 1e3:.1f} ms > {t.max_latency_s * 1e3:.1f} ms")
