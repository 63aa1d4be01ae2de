"""Runs a manager policy safely, once per control period (no ROS: the manager node and the harness call it).

- The policy is built from the first platform state (it names the domains); when the named policy cannot
  run here (e.g. ``joint`` without a board model) the supervisor falls back to ``static`` and says why.
- Watchdog: when an app's reports or the platform state are missing for ``watchdog_s``, it holds the safe
  setting (every app at ``safe_level``, the apps' domain at its top frequency) until the inputs are back.
- Commands are de-duplicated: a level is sent again only when it changes or the app runs another level; a
  DVFS setting only when the board is not already there.
- Infeasible targets (no setting is predicted to meet them; the app runs the best effort) are said once per app
  and cause (a warning event), held in ``infeasible`` while they last and counted per cause in episodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dynofa_ros.manager.controller import ControllerConfig
from dynofa_ros.manager.models import AppSpec, BoardModel, LevelPoint, MeasuredModel, SplitModel
from dynofa_ros.manager.policy import POLICY_NAMES, Policy, make_policy
from dynofa_ros.manager.records import AppReport, AppTarget, Decision, Infeasible, LevelCommand
from dynofa_ros.platform.types import DomainInfo, DvfsSetting, PlatformState

FALLBACK_POLICY = "static"


@dataclass(frozen=True)
class ModelSetup:
    """What a policy may know about the board: its latency/power model and thermal trip points."""

    model: BoardModel
    trip_points_c: dict[str, float] = field(default_factory=dict)
    zone_domains: dict[str, tuple[str, ...]] = field(default_factory=dict)


def simulated_board_model(board_config: str = "", mode: str = "") -> ModelSetup:
    """The simulated board's own models (YAML ``board_config``, '' = shipped Xavier NX, in nvpmodel ``mode``,
    '' = the YAML's default). FileNotFoundError / ValueError naming the problem for a bad config or mode."""
    from dynofa_ros.manager.simmodel import SimBoardModel
    from dynofa_ros.platform.sim import SimulatedBoard

    try:
        board = SimulatedBoard.from_config(board_config or None, mode=mode or None)
    except KeyError as exc:  # a config naming an unknown domain
        raise ValueError(f"board config {board_config or '(shipped)'}: {exc.args[0]}") from None
    zones = board.config.thermal.zones
    return ModelSetup(SimBoardModel(board), {z.name: z.trip_c for z in zones},
                      {z.name: tuple(z.heated_by) for z in zones})


@dataclass(frozen=True)
class Event:
    """Something the caller should log (``severity``: info, warning or error; ``repeats``: may come again
    every period, so throttle it)."""

    severity: str
    text: str
    repeats: bool = False


@dataclass
class Step:
    """Commands of one control period (already de-duplicated) and what to log."""

    levels: dict[str, LevelCommand] = field(default_factory=dict)
    dvfs: list[tuple[DvfsSetting, str]] = field(default_factory=list)  # (setting, reason)
    events: list[Event] = field(default_factory=list)
    infeasible_changed: bool = False  # an app's target became infeasible, changed cause or became feasible


class Supervisor:
    """Feeds reports, targets and platform states to a policy; watchdog, safe setting, command de-duplication.

    ``levels``: app id → its library levels (fastest first); ``sim_model`` is used when the platform state
    says the board is simulated (policies needing a model fall back to ``static`` on a real board).
    Times (``now``) are seconds on any monotonic clock.
    """

    def __init__(self, policy_name: str, levels: Mapping[str, Sequence[LevelPoint]], app_domain: str,
                 now: float, *, watchdog_s: float = 3.0, safe_level: int = 0,
                 initial_targets: Mapping[str, AppTarget] | None = None,
                 sim_model: ModelSetup | None = None) -> None:
        if policy_name not in POLICY_NAMES:
            raise ValueError(f"policy must be one of {list(POLICY_NAMES)}, got {policy_name!r}")
        if not levels:
            raise ValueError("app_ids is empty: the manager needs at least one app to manage")
        if not math.isfinite(watchdog_s) or watchdog_s <= 0:
            raise ValueError(f"watchdog_s must be finite and > 0, got {watchdog_s}")
        if not 0 <= safe_level < min(len(lv) for lv in levels.values()):
            raise ValueError(f"safe_level {safe_level} is not a level of every app")
        self.policy_name = policy_name
        self.apps = [AppSpec(a, app_domain, tuple(lv)) for a, lv in levels.items()]
        self.app_domain = app_domain
        self.watchdog_s = watchdog_s
        self.safe_level = safe_level
        self.sim_model = sim_model
        self.targets: dict[str, AppTarget] = dict(initial_targets or {})
        self.policy: Policy | None = None
        self.policy_error = ""
        self.active_policy = ""
        self.platform: PlatformState | None = None
        self.domains: list[DomainInfo] = []
        self.watchdog_reason = ""
        self.last_decision: Decision | None = None
        self.infeasible: dict[str, Infeasible] = {}  # app -> why its target is infeasible now
        self.infeasible_episodes: dict[tuple[str, str], int] = {}  # (app, cause) -> times it became infeasible
        self._reports: list[AppReport] = []
        self._last_report = {a.app_id: now for a in self.apps}
        self._last_level: dict[str, int] = {}
        self._last_platform = now
        self._commanded: dict[str, int] = {}

    @property
    def app_ids(self) -> list[str]:
        return [a.app_id for a in self.apps]

    # -- inputs ------------------------------------------------------------------------------------
    def add_report(self, report: AppReport, now: float) -> None:
        """One frame report of a managed app (ValueError for an unmanaged one)."""
        if report.app_id not in self._last_report:
            raise ValueError(f"report from unmanaged app {report.app_id!r}; managed apps: {self.app_ids}")
        self._reports.append(report)
        self._last_report[report.app_id] = now
        self._last_level[report.app_id] = report.level

    def set_target(self, target: AppTarget) -> None:
        """The app's new performance target (ValueError for an unmanaged app)."""
        if target.app_id not in self._last_report:
            raise ValueError(f"unknown app {target.app_id!r}; managed apps: {self.app_ids}")
        self.targets[target.app_id] = target

    def set_platform(self, state: PlatformState, domains: Sequence[DomainInfo], now: float) -> list[Event]:
        """A platform reading and its domains; the first one builds the policy (events say how it went)."""
        self.platform = state
        self.domains = list(domains)
        self._last_platform = now
        if self.policy is not None or self.policy_error:
            return []
        return self._build_policy(state.simulated)

    def _build_policy(self, simulated: bool) -> list[Event]:
        setup = self.sim_model if simulated else None
        model, config = self._sim_model(setup) if setup else (None, None)
        thermal = {"trip_points_c": setup.trip_points_c, "zone_domains": setup.zone_domains} if setup else {}
        events = []
        try:
            try:
                self.policy = make_policy(self.policy_name, self.apps, self.domains, model, config=config, **thermal)
                self.active_policy = self.policy_name
            except ValueError as exc:
                events.append(Event("error", f"policy {self.policy_name!r} unavailable here ({exc}); "
                                             f"falling back to {FALLBACK_POLICY!r}"))
                self.policy = make_policy(FALLBACK_POLICY, self.apps, self.domains, model)
                self.active_policy = f"{FALLBACK_POLICY} (fallback from {self.policy_name})"
        except ValueError as exc:
            self.policy_error = str(exc)
            return [*events, Event("error", f"no policy can manage this board: {exc}")]
        sim = " on a SIMULATED board" if simulated else ""
        events.append(Event("info", f"policy {self.active_policy} ready{sim}; "
                                    f"domains {[d.name for d in self.domains]}"))
        return events

    def _sim_model(self, setup: ModelSetup) -> tuple[BoardModel, ControllerConfig | None]:
        """On a simulated board the apps' frames are the host's real ones stretched by ``f_top / f`` (see
        ``platform/sim/emulation.py``): latency is predicted from the levels' measured latency with that law
        (cores not modelled) and power from the board's model. The board's own latency model (Xavier work
        from MACs) is used only when the levels carry no measured latency for the app domain: its per-level
        shape differs from the host's, so the app's slowdown would jump at every level switch."""
        try:
            measured = MeasuredModel.for_apps(self.apps, self.domains)
        except ValueError:
            return setup.model, None
        return SplitModel(measured, setup.model), ControllerConfig(tune_cores=False)

    # -- control -----------------------------------------------------------------------------------
    def check_watchdog(self, now: float) -> str:
        """Why the safe setting must be held now ('' when all inputs are fresh)."""
        if now - self._last_platform > self.watchdog_s:
            return f"no platform state for > {self.watchdog_s:g} s"
        stale = [a for a, t in self._last_report.items() if now - t > self.watchdog_s]
        if stale:
            return f"no performance reports from {stale} for > {self.watchdog_s:g} s"
        return ""

    def step(self, now: float) -> Step:
        """One control period: the commands to send now. Reports received since the last call are consumed
        whatever happens (watchdog, no policy yet, policy failure), so they never pile up."""
        reports, self._reports = self._reports, []
        out = Step()
        reason = self.check_watchdog(now)
        if reason:
            if reason != self.watchdog_reason:
                out.events.append(Event("warning", f"watchdog: {reason}; holding the safe setting"))
                self._hold_safe(reason, out)
                self._commanded.clear()  # re-send the policy's levels once the inputs are back
            self.watchdog_reason = reason
            return out
        if self.watchdog_reason:
            out.events.append(Event("info", "watchdog cleared: inputs are fresh again"))
            self.watchdog_reason = ""
        if self.policy is None or self.platform is None:
            return out
        try:
            decision = self.policy.update(self.platform.stamp_s, reports, dict(self.targets), self.platform)
        except ValueError as exc:
            out.events.append(Event("error", f"policy update failed, holding the last setting: {exc}", repeats=True))
            return out
        self.last_decision = decision
        self._note_infeasible(decision.infeasible, out)
        for app_id, cmd in decision.levels.items():
            if self._commanded.get(app_id) != cmd.level or self._last_level.get(app_id, cmd.level) != cmd.level:
                out.levels[app_id] = cmd
                self._commanded[app_id] = cmd.level
        for setting in decision.dvfs:
            if not self._already_there(setting):
                out.dvfs.append((setting, decision.reasons.get(setting.domain, self.active_policy)))
        return out

    def _note_infeasible(self, infeasible: dict[str, Infeasible], out: Step) -> None:
        """Count each new infeasible episode; warn the first time an app's target is infeasible for a cause."""
        for app_id, why in infeasible.items():
            before = self.infeasible.get(app_id)
            if before is not None and before.cause == why.cause:
                continue
            key = (app_id, why.cause)
            self.infeasible_episodes[key] = self.infeasible_episodes.get(key, 0) + 1
            if self.infeasible_episodes[key] == 1:
                out.events.append(Event("warning", f"target of {app_id} infeasible ({why.cause}): {why.detail}; "
                                                   "running the best effort (said once per cause; counted on "
                                                   "/diagnostics)"))
        out.infeasible_changed = {a: w.cause for a, w in infeasible.items()} != {
            a: w.cause for a, w in self.infeasible.items()}
        self.infeasible = dict(infeasible)

    def _already_there(self, setting: DvfsSetting) -> bool:
        now = self.platform.domains.get(setting.domain) if self.platform is not None else None
        if now is None:
            return False
        same_f = setting.freq_hz is None or now.cur_hz == setting.freq_hz
        same_c = setting.online_cores is None or now.online_cores == setting.online_cores
        return same_f and same_c

    def _hold_safe(self, why: str, out: Step) -> None:
        for app_id in self.app_ids:
            out.levels[app_id] = LevelCommand(self.safe_level, f"watchdog: {why}")
        dom = self.platform.domains.get(self.app_domain) if self.platform is not None else None
        if dom is not None and dom.available_hz:
            out.dvfs.append((DvfsSetting(dom.name, max(dom.available_hz)), f"watchdog: {why}"))
