"""Power model of the simulated board: P = P_static + C * V(f)^2 * f * u per domain, summed into rails."""

from __future__ import annotations

from collections.abc import Mapping

from dynofa_ros.platform.sim.config import BoardConfig

RAILS = ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
EMC_REF_HZ = 1_600_000_000


class PowerModel:
    """Per-domain power and INA3221-style rails (VDD_IN is the board total, not a sum of the others)."""

    def __init__(self, config: BoardConfig) -> None:
        self.config = config

    def static_power(self, domain: str, online_cores: int) -> float:
        """Leakage and clock-tree floor of a domain, W (CPU: per online core)."""
        d, p = self.config.domain(domain), self.config.power
        return online_cores * p.cpu_static_w_per_core if d.kind == "cpu" else p.gpu_static_w

    def dynamic_power(self, domain: str, freq_hz: float, utilisation: float, online_cores: int) -> float:
        """C * V(f)^2 * f * u, W; CPU capacitance is per core, so it scales with the online cores."""
        if not 0.0 <= utilisation <= 1.0:
            raise ValueError(f"utilisation must be in [0, 1], got {utilisation}")
        d, p = self.config.domain(domain), self.config.power
        cap = online_cores * p.cpu_capacitance_f if d.kind == "cpu" else p.gpu_capacitance_f
        return cap * d.vf.voltage(freq_hz) ** 2 * freq_hz * utilisation

    def domain_power(self, domain: str, freq_hz: float, utilisation: float, online_cores: int) -> float:
        """Static + dynamic power of one domain, W."""
        return self.static_power(domain, online_cores) + self.dynamic_power(
            domain, freq_hz, utilisation, online_cores)

    def memory_activity(self, utilisation: Mapping[str, float]) -> float:
        """EMC activity in [0, 1] from the domains' utilisation."""
        w = self.config.power.mem_weight
        return min(1.0, sum(w[self.config.domain(d).kind] * u for d, u in utilisation.items()))

    def rails(self, domain_power: Mapping[str, float], utilisation: Mapping[str, float],
              emc_max_hz: int) -> dict[str, float]:
        """Rail powers (W) from per-domain powers and utilisation under an EMC cap."""
        p = self.config.power
        cpu_gpu_cv = sum(domain_power.values()) + p.cv_static_w
        soc = p.soc_static_w + p.emc_w_at_1600mhz * self.memory_activity(utilisation) * emc_max_hz / EMC_REF_HZ
        return {"VDD_IN": cpu_gpu_cv + soc + p.board_other_w, "VDD_CPU_GPU_CV": cpu_gpu_cv, "VDD_SOC": soc}
