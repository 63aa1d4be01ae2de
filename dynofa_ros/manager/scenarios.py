"""Deterministic benchmark scenarios: the same trace (apps, targets, loads, ambient) for every policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynofa_ros.manager.records import AppTarget


@dataclass(frozen=True)
class ScenarioApp:
    """A perception app: a camera at ``rate_hz`` feeding a network on ``domain``."""

    app_id: str
    domain: str
    rate_hz: float = 30.0


@dataclass(frozen=True)
class TargetChange:
    at_s: float
    target: AppTarget


@dataclass(frozen=True)
class LoadChange:
    """A competing background load on ``domain`` (fraction of the domain; 0 removes it)."""

    at_s: float
    domain: str
    fraction: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration_s: float
    apps: tuple[ScenarioApp, ...]
    targets: tuple[AppTarget, ...]  # at t = 0
    events: tuple[TargetChange | LoadChange, ...] = ()
    ambient_c: float = 25.0
    mode: str = "15W_6CORE"
    control_period_s: float = 0.2
    preheat_s: float = 0.0  # seconds of the heat sink's warm-up to skip (hot-ambient runs start warm)
    tags: tuple[str, ...] = field(default_factory=tuple)

    def targets_seen(self, app_id: str) -> list[AppTarget]:
        """Every target ``app_id`` gets during the run, in time order."""
        out = [t for t in self.targets if t.app_id == app_id]
        out += [e.target for e in self.events if isinstance(e, TargetChange) and e.target.app_id == app_id]
        return out


def default_scenarios(min_accuracy: float = 0.0) -> list[Scenario]:
    """The five benchmark scenarios on the simulated Xavier NX (GPU frames cost ~28 ms of fixed overhead
    plus MAC-proportional compute, CPU frames are compute-bound: see config/platforms/xavier_nx.yaml)."""
    cam = ScenarioApp("cam", "gpu")
    acc = min_accuracy
    return [
        Scenario("steady", "one GPU app, steady 40 ms target", 30.0, (cam,),
                 (AppTarget("cam", 0.040, acc),), tags=("one-app",)),
        Scenario("target-change", "one GPU app; target 45 ms, 33 ms at 10 s, 60 ms at 20 s", 30.0, (cam,),
                 (AppTarget("cam", 0.045, acc),),
                 (TargetChange(10.0, AppTarget("cam", 0.033, acc)), TargetChange(20.0, AppTarget("cam", 0.060, acc))),
                 tags=("one-app",)),
        Scenario("contention", "one GPU app, 40 ms target; a competing GPU load (10 %) from 10 s to 20 s",
                 30.0, (cam,), (AppTarget("cam", 0.040, acc),),
                 (LoadChange(10.0, "gpu", 0.1), LoadChange(20.0, "gpu", 0.0)), tags=("one-app",)),
        Scenario("two-apps", "GPU app at 30 Hz (40 ms, priority 1) + CPU app at 5 Hz on cluster cpu0 "
                 "(200 ms, priority 0)", 30.0,
                 (cam, ScenarioApp("nav", "cpu0", 5.0)),
                 (AppTarget("cam", 0.040, acc, priority=1), AppTarget("nav", 0.200, acc, priority=0)),
                 tags=("two-apps",)),
        Scenario("hot-ambient", "one GPU app, 40 ms target, 75 °C ambient, heat sink pre-warmed", 60.0, (cam,),
                 (AppTarget("cam", 0.040, acc),), ambient_c=75.0, preheat_s=120.0, tags=("thermal",)),
    ]
