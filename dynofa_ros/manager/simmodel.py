"""The simulated Xavier NX's own models, wrapped as the manager's :class:`BoardModel`."""

from __future__ import annotations

from dynofa_ros.manager.models import LevelPoint
from dynofa_ros.platform.sim.board import SimulatedBoard
from dynofa_ros.platform.sim.latency import DnnWork, xavier_work


class SimBoardModel:
    """Latency from the board's work model (a level's MACs → Xavier-NX-like work), power from its rails.

    ``power_w`` is the domain's static power plus everything its utilisation adds to VDD_IN (dynamic
    power and memory-controller activity), so it counts what the board total would pay.
    """

    def __init__(self, board: SimulatedBoard) -> None:
        self.board = board
        self._works: dict[tuple[float, str], DnnWork] = {}

    def work(self, level: LevelPoint, domain: str) -> DnnWork:
        """The simulated frame work of ``level`` on ``domain``'s kind of processor."""
        kind = self.board.config.domain(domain).kind
        key = (level.macs, kind)
        if key not in self._works:
            self._works[key] = xavier_work(level.macs, kind, self.board.config)
        return self._works[key]

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int) -> float:
        gpu = self.board.config.domain(domain).kind == "gpu"
        return self.board.predict_latency(self.work(level, domain), domain, freq_hz, None if gpu else cores)

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        freqs = {domain: freq_hz}
        busy = self.board.predict_power({domain: util}, freqs)["VDD_IN"]
        idle = self.board.predict_power({}, freqs)["VDD_IN"]
        return self.board.power_model.static_power(domain, cores) + busy - idle
