"""The simulated Xavier NX's own models, wrapped as the manager's :class:`BoardModel`."""

from __future__ import annotations

from dynofa_ros.manager.models import LevelPoint
from dynofa_ros.platform.sim.board import SimulatedBoard
from dynofa_ros.platform.sim.latency import DnnWork, frame_time, xavier_work


class SimBoardModel:
    """Latency from the board's work model (a level's MACs → Xavier-NX-like work), power from its rails.

    Both are functions of the candidate setting alone (not of the board's current one): ``latency_s`` is the
    simulator's frame time with ``cores`` threads, ``power_w`` the domain's static power with ``cores`` online
    plus everything its utilisation adds to VDD_IN (dynamic power and memory-controller activity), so it
    counts what the board total would pay.
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

    def latency_s(self, level: LevelPoint, domain: str, freq_hz: int, cores: int, load: float = 0.0) -> float:
        """Noise-free frame time; ``load`` is a competing background load's fraction of the domain (the
        board shares the domain's threads in proportion to demand, so the frame gets ``1 / (1 + load)``)."""
        gpu = self.board.config.domain(domain).kind == "gpu"
        return frame_time(self.work(level, domain), [(freq_hz, 1 if gpu else cores, 1.0 / (1.0 + load))])

    def power_w(self, domain: str, freq_hz: int, util: float, cores: int) -> float:
        pm, emc = self.board.power_model, self.board.mode.emc_max_hz
        memory = pm.rails({}, {domain: util}, emc)["VDD_IN"] - pm.rails({}, {}, emc)["VDD_IN"]
        return pm.domain_power(domain, freq_hz, util, cores) + memory
