"""A tiny hand-checkable board and app for the manager tests."""

from __future__ import annotations

import pytest

from dynofa_ros.manager.models import AppSpec, LevelPoint
from dynofa_ros.platform.types import DomainInfo, DomainState, PlatformState

MHZ = 1_000_000
GPU_FREQS = (100 * MHZ, 200 * MHZ, 300 * MHZ, 400 * MHZ)
LEVELS = (  # latency at 400 MHz
    LevelPoint(0, "L0", 0.80, 1e6, {"ref": 0.010}),
    LevelPoint(1, "L1", 0.85, 2e6, {"ref": 0.015}),
    LevelPoint(2, "L2", 0.90, 3e6, {"ref": 0.020}),
)


class TinyBoard:
    """latency = ref · 400 MHz / f; power = 0.2 + 0.3·f/f_max + 2·(f/f_max)²·util (W)."""

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        return level.latency_s["ref"] * GPU_FREQS[-1] / freq_hz

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        x = freq_hz / GPU_FREQS[-1]
        return 0.2 + 0.3 * x + 2.0 * x * x * util


@pytest.fixture
def gpu_domain() -> DomainInfo:
    return DomainInfo("gpu", "gpu", GPU_FREQS, writable=True)


@pytest.fixture
def board() -> TinyBoard:
    return TinyBoard()


def _app(app_id: str = "cam", rate_hz: float = 30.0) -> AppSpec:
    return AppSpec(app_id, "gpu", LEVELS, rate_hz)


def _state(stamp_s: float = 0.0, freq_hz: int = GPU_FREQS[-1], temps: dict[str, float] | None = None) -> PlatformState:
    dom = DomainState("gpu", "gpu", freq_hz, GPU_FREQS[0], GPU_FREQS[-1], GPU_FREQS, 0.5)
    return PlatformState(stamp_s, True, {"gpu": dom}, temperatures_c=dict(temps or {}))


@pytest.fixture
def make_app():
    """``make_app(app_id="cam", rate_hz=30.0) -> AppSpec`` on the tiny GPU with LEVELS."""
    return _app


@pytest.fixture
def make_state():
    """``make_state(stamp_s=0, freq_hz=400 MHz, temps=None) -> PlatformState`` of the tiny GPU."""
    return _state
