"""The ``Policy`` interface every manager policy implements, and ``make_policy`` to build one by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dynofa_ros.manager.baselines import GovernorPolicy, StaticPolicy, SubnetOnlyPolicy
from dynofa_ros.manager.controller import ControllerConfig, JointController
from dynofa_ros.manager.models import AppSpec, BoardModel, MeasuredModel
from dynofa_ros.manager.records import AppReport, AppTarget, Decision
from dynofa_ros.manager.thermal import ThermalGuard
from dynofa_ros.platform.types import DomainInfo, PlatformState

GOVERNORS = ("performance", "powersave", "ondemand", "conservative", "schedutil", "simple_ondemand")
POLICY_NAMES = ("joint", "subnet-only", "dvfs-only", "static") + tuple(f"governor:{g}" for g in GOVERNORS)


class Policy(Protocol):
    """Called once per control period with the frame reports received since the previous call."""

    def update(
        self, now_s: float, reports: list[AppReport], targets: dict[str, AppTarget], platform: PlatformState
    ) -> Decision: ...


def make_policy(
    name: str,
    apps: Sequence[AppSpec],
    domains: Sequence[DomainInfo],
    model: BoardModel | None = None,
    *,
    fixed_levels: dict[str, int] | None = None,
    trip_points_c: dict[str, float] | None = None,
    zone_domains: dict[str, tuple[str, ...]] | None = None,
    config: ControllerConfig | None = None,
) -> Policy:
    """Build a policy by name (see ``POLICY_NAMES``).

    ``fixed_levels`` (app → level index, default the most accurate) is used by the baselines that do not
    choose levels; "joint" and "dvfs-only" predict with ``model``, by default a :class:`MeasuredModel` from
    the levels' measured latency (then cores are not tuned; ValueError when the levels have no latency for
    their domain); ``trip_points_c`` enables the joint
    controller's thermal guard (``zone_domains``: zone → the domains that heat it).
    """
    fixed = dict(fixed_levels or {})
    if name in ("joint", "dvfs-only"):
        if model is None:
            try:
                model = MeasuredModel.for_apps(apps, domains)
            except ValueError as exc:
                raise ValueError(f"policy {name!r} needs a board model: {exc}") from exc
            config = config or ControllerConfig(tune_cores=False)  # the measured model knows no core counts
        allowed = None
        if name == "dvfs-only":
            allowed = {a.app_id: (fixed.get(a.app_id, len(a.levels) - 1),) for a in apps}
        thermal = ThermalGuard(dict(trip_points_c), dict(zone_domains or {})) if trip_points_c else None
        return JointController(apps, domains, model, config or ControllerConfig(), thermal, allowed)
    if name == "static":
        return StaticPolicy(apps, domains, fixed)
    if name == "subnet-only":
        return SubnetOnlyPolicy(apps, domains, levels=fixed)
    if name.startswith("governor:"):
        gov = name.split(":", 1)[1]
        if gov not in GOVERNORS:
            raise ValueError(f"unknown governor {gov!r}; choose one of {', '.join(GOVERNORS)}")
        return GovernorPolicy(apps, domains, gov, fixed)
    raise ValueError(f"unknown policy {name!r}; choose one of {', '.join(POLICY_NAMES)}")

