"""Baseline policies behind the same interface as the joint controller.

- :class:`StaticPolicy`: fixed level per app, domains pinned at their top frequency.
- :class:`SubnetOnlyPolicy`: the original Dynamic-OFA runtime rule at the top frequency: step down one
  level when the mean latency of the last ``window`` frames exceeds the target, step up one when it is
  below ``(1 - slack)`` of the target; the window restarts after every step.
- :class:`GovernorPolicy`: fixed level per app, each domain's frequency chosen by a Linux governor
  emulation from the platform state's utilisation.
- DVFS-only is the joint controller with one allowed level per app (see ``policy.make_policy``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from dynofa_ros.manager.models import AppSpec
from dynofa_ros.manager.records import AppReport, AppTarget, Decision, LevelCommand, validate_targets
from dynofa_ros.platform.governors import make_governor
from dynofa_ros.platform.types import DomainInfo, DvfsSetting, PlatformState


def _check_levels(apps: Sequence[AppSpec], levels: dict[str, int]) -> dict[str, int]:
    known = {a.app_id: a for a in apps}
    out = {}
    for app in apps:
        lvl = levels.get(app.app_id, len(app.levels) - 1)
        if not 0 <= lvl < len(app.levels):
            raise ValueError(f"fixed level {lvl} for {app.app_id!r} outside 0..{len(app.levels) - 1}")
        out[app.app_id] = lvl
    unknown = set(levels) - set(known)
    if unknown:
        raise ValueError(f"fixed levels for unknown apps {sorted(unknown)}")
    return out


def _app_domains(apps: Sequence[AppSpec], domains: Sequence[DomainInfo]) -> dict[str, DomainInfo]:
    by_name = {d.name: d for d in domains}
    missing = sorted({a.domain for a in apps} - set(by_name))
    if missing:
        raise ValueError(f"apps run on unknown domains {missing}")
    return {a.domain: by_name[a.domain] for a in apps}


def _fixed_decision(apps: Sequence[AppSpec], levels: dict[str, int], why: str) -> Decision:
    d = Decision()
    for app in apps:
        d.levels[app.app_id] = LevelCommand(levels[app.app_id], why)
        d.reasons[app.app_id] = why
    return d


@dataclass
class StaticPolicy:
    """A fixed network at the top frequency of its domain."""

    apps: Sequence[AppSpec]
    domains: Sequence[DomainInfo]
    levels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.levels = _check_levels(self.apps, self.levels)
        self._doms = _app_domains(self.apps, self.domains)

    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision:
        validate_targets(targets, {a.app_id for a in self.apps})
        d = _fixed_decision(self.apps, self.levels, "static: fixed level, top frequency")
        d.dvfs = [DvfsSetting(n, info.frequencies_hz[-1] if info.frequencies_hz else None)
                  for n, info in sorted(self._doms.items())]
        return d


@dataclass
class SubnetOnlyPolicy:
    """Dynamic-OFA's step rule on the 20-frame mean latency, at the top frequency."""

    apps: Sequence[AppSpec]
    domains: Sequence[DomainInfo]
    window: int = 20
    slack: float = 0.2
    levels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window < 1 or not 0 <= self.slack < 1:
            raise ValueError(f"window must be >= 1 and slack in [0, 1), got {self.window}, {self.slack}")
        self.levels = _check_levels(self.apps, self.levels)
        self._doms = _app_domains(self.apps, self.domains)
        self._apps = {a.app_id: a for a in self.apps}
        self._lat: dict[str, deque[float]] = {a.app_id: deque(maxlen=self.window) for a in self.apps}

    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision:
        validate_targets(targets, set(self._apps))
        d = Decision()
        for r in reports:
            if r.app_id not in self._apps:
                raise ValueError(f"report from unknown app {r.app_id!r}")
            if r.level == self.levels[r.app_id]:  # frames of the previous level do not count
                self._lat[r.app_id].append(r.latency_s)
        for app_id, app in self._apps.items():
            lvl, why = self.levels[app_id], "holding"
            window = self._lat[app_id]
            t = targets.get(app_id)
            if t is not None and len(window) == self.window:
                mean = sum(window) / len(window)
                floor = min((i for i, lv in enumerate(app.levels) if lv.top1 >= t.min_accuracy),
                            default=len(app.levels) - 1)
                if mean > t.max_latency_s and lvl > floor:
                    lvl, why = lvl - 1, f"mean {mean * 1e3:.1f} ms > target: step down"
                elif mean < (1 - self.slack) * t.max_latency_s and lvl < len(app.levels) - 1:
                    lvl, why = lvl + 1, f"mean {mean * 1e3:.1f} ms leaves slack: step up"
                if lvl != self.levels[app_id]:
                    window.clear()
                if mean > t.max_latency_s and lvl == self.levels[app_id]:
                    d.gives_way[app_id] = f"{app_id}: mean {mean * 1e3:.1f} ms above target at the lowest level"
            self.levels[app_id] = lvl
            d.levels[app_id] = LevelCommand(lvl, f"subnet-only: {why}")
            d.reasons[app_id] = d.levels[app_id].reason
        d.dvfs = [DvfsSetting(n, info.frequencies_hz[-1] if info.frequencies_hz else None)
                  for n, info in sorted(self._doms.items())]
        return d


@dataclass
class GovernorPolicy:
    """A fixed network per app; each domain's frequency follows a Linux governor emulation
    (``dynofa_ros.platform.governors``, one instance per domain), fed with the platform state's
    utilisation over the time since the previous call (call it at the governor's sampling period)."""

    apps: Sequence[AppSpec]
    domains: Sequence[DomainInfo]
    governor: str
    levels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.levels = _check_levels(self.apps, self.levels)
        self._doms = _app_domains(self.apps, self.domains)
        self._govs = {name: make_governor(self.governor) for name in self._doms}
        self._last_s: float | None = None

    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision:
        validate_targets(targets, {a.app_id for a in self.apps})
        dt = 0.0 if self._last_s is None else max(0.0, now_s - self._last_s)
        self._last_s = now_s
        d = _fixed_decision(self.apps, self.levels, f"governor {self.governor}: fixed level")
        for name, info in sorted(self._doms.items()):
            state = platform.domains.get(name)
            if state is None or math.isnan(state.utilisation):
                raise ValueError(f"platform state has no utilisation for domain {name!r}: governors need it")
            d.dvfs.append(DvfsSetting(name, self._govs[name].next_frequency(info, state.cur_hz, state.utilisation, dt)))
        return d
