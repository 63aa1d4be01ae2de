"""Plain records the manager consumes and produces (the ROS node translates messages to these).

Units: seconds, joules, top-1 accuracy as a fraction in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dynofa_ros.platform.types import DvfsSetting


def _finite(name: str, value: float, *, low: float | None = 0.0, strict: bool = False) -> float:
    """``value`` as float; ValueError naming ``name`` if NaN/inf or below ``low``."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {v}")
    return v


def _app_id(app_id: str) -> str:
    if not isinstance(app_id, str) or not app_id.strip():
        raise ValueError(f"app_id must be a non-empty string, got {app_id!r}")
    return app_id


@dataclass(frozen=True)
class AppReport:
    """One frame's measurement from an application (``level`` is the level index that ran)."""

    app_id: str
    stamp_s: float
    level: int
    latency_s: float
    accuracy: float = float("nan")  # the level's expected top-1; NaN when the app does not know
    device: str = ""  # the DVFS domain the frame ran on ("gpu", "cpu0", ...)
    energy_j: float = float("nan")  # the app's own energy estimate, NaN when unknown

    def __post_init__(self) -> None:
        _app_id(self.app_id)
        _finite("AppReport.stamp_s", self.stamp_s, low=None)
        if not isinstance(self.level, int) or self.level < 0:
            raise ValueError(f"AppReport.level must be a non-negative int, got {self.level!r}")
        _finite("AppReport.latency_s", self.latency_s, strict=True)


@dataclass(frozen=True)
class AppTarget:
    """What an application asks for. Higher ``priority`` wins; ``weight`` ranks within a priority."""

    app_id: str
    max_latency_s: float
    min_accuracy: float = 0.0
    priority: int = 0
    weight: float = 1.0
    energy_budget_j: float | None = None  # per frame; None = no budget

    def __post_init__(self) -> None:
        _app_id(self.app_id)
        _finite("AppTarget.max_latency_s", self.max_latency_s, strict=True)
        acc = _finite("AppTarget.min_accuracy", self.min_accuracy)
        if acc > 1.0:
            raise ValueError(f"AppTarget.min_accuracy is a fraction in [0, 1], got {acc}")
        if not isinstance(self.priority, int):
            raise ValueError(f"AppTarget.priority must be an int, got {self.priority!r}")
        _finite("AppTarget.weight", self.weight, strict=True)
        if self.energy_budget_j is not None:
            _finite("AppTarget.energy_budget_j", self.energy_budget_j, strict=True)


@dataclass(frozen=True)
class LevelCommand:
    """The level an app must run next, and why."""

    level: int
    reason: str = ""


@dataclass(frozen=True)
class Infeasible:
    """An app's target that no setting is predicted to meet, even with its domain to itself; the app runs the
    best effort. ``cause`` names the limit in words that do not change from period to period (reporting is
    once per cause); ``detail`` gives this period's figures."""

    cause: str
    detail: str


MANAGER_DIAGNOSTIC = "dynofa manager"  # the manager node's /diagnostics status
INFEASIBLE_KEY = "infeasible_"  # its key prefix: infeasible_<app> = "<cause>; <detail>"


def infeasible_values(infeasible: dict[str, Infeasible]) -> dict[str, str]:
    """Diagnostics key/values of the apps whose target is infeasible now (an app absent: feasible)."""
    return {f"{INFEASIBLE_KEY}{app}": f"{why.cause}; {why.detail}" for app, why in infeasible.items()}


def parse_infeasible_values(values: dict[str, str]) -> dict[str, str]:
    """App → cause from diagnostics key/values written by :func:`infeasible_values`."""
    return {k[len(INFEASIBLE_KEY):]: v.split("; ", 1)[0] for k, v in values.items() if k.startswith(INFEASIBLE_KEY)}


@dataclass
class Decision:
    """A policy's output for one control period.

    ``gives_way`` names the apps whose target is knowingly not met (arbitration or thermal limits)
    with the reason; ``infeasible`` the apps whose target no setting is predicted to meet;
    ``power_w`` is the predicted power attributed to each app (W).
    """

    levels: dict[str, LevelCommand] = field(default_factory=dict)
    dvfs: list[DvfsSetting] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    gives_way: dict[str, str] = field(default_factory=dict)
    infeasible: dict[str, Infeasible] = field(default_factory=dict)
    power_w: dict[str, float] = field(default_factory=dict)


def validate_targets(targets: dict[str, AppTarget], known_apps: set[str] | None = None) -> None:
    """ValueError if a key disagrees with its target's app_id or names an app the caller does not know."""
    for key, target in targets.items():
        if not isinstance(target, AppTarget):
            raise ValueError(f"target for {key!r} must be an AppTarget, got {type(target).__name__}")
        if key != target.app_id:
            raise ValueError(f"target keyed {key!r} carries app_id {target.app_id!r}")
        if known_apps is not None and key not in known_apps:
            raise ValueError(f"target for unknown app {key!r}; known apps: {sorted(known_apps)}")
