"""Load and validate a simulated board description (YAML) into frozen dataclasses.

Tables in the YAML are in MHz and nF for readability; everything here is in Hz, F, W, V, degC, s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dynofa_ros.package_files import package_file
from dynofa_ros.platform.types import DomainKind

DEFAULT_CONFIG = ("config", "platforms", "xavier_nx.yaml")  # in the package's share directory
MHZ = 1_000_000


class BoardConfigError(ValueError):
    """The board description is missing a field or holds an inconsistent value."""


@dataclass(frozen=True)
class VfCurve:
    """Piecewise-linear voltage as a function of frequency, flat outside the points."""

    freqs_hz: tuple[float, ...]
    volts: tuple[float, ...]

    def voltage(self, freq_hz: float) -> float:
        return float(np.interp(freq_hz, self.freqs_hz, self.volts))


@dataclass(frozen=True)
class DomainConfig:
    name: str
    kind: DomainKind
    frequencies_hz: tuple[int, ...]  # ascending
    cores: tuple[int, ...]  # CPU ids (cpu domains); empty for the GPU
    vf: VfCurve
    zone: str  # thermal zone whose trip throttles this domain


@dataclass(frozen=True)
class ModeConfig:
    """An nvpmodel power mode."""

    name: str
    id: int
    online_cores: int
    cpu_max_hz: int
    gpu_max_hz: int
    emc_max_hz: int
    budget_w: float


@dataclass(frozen=True)
class PowerConfig:
    cpu_capacitance_f: float  # per core
    cpu_static_w_per_core: float
    gpu_capacitance_f: float
    gpu_static_w: float
    mem_weight: Mapping[str, float]  # per domain kind
    soc_static_w: float
    emc_w_at_1600mhz: float
    cv_static_w: float
    board_other_w: float


@dataclass(frozen=True)
class ZoneConfig:
    name: str
    heated_by: tuple[str, ...]
    r_c_per_w: float
    tau_s: float
    trip_c: float


@dataclass(frozen=True)
class ThermalConfig:
    ambient_c: float
    sink_r_c_per_w: float
    sink_tau_s: float
    poll_s: float
    throttle_step: float
    max_cooling_state: int
    hysteresis_c: float
    zones: tuple[ZoneConfig, ...]


@dataclass(frozen=True)
class LatencyKindConfig:
    macs_per_cycle: float
    overhead_s: float
    parallel_fraction: float


@dataclass(frozen=True)
class BoardConfig:
    name: str
    default_mode: str
    domains: tuple[DomainConfig, ...]
    modes: Mapping[str, ModeConfig]
    power: PowerConfig
    thermal: ThermalConfig
    latency: Mapping[str, LatencyKindConfig]  # per domain kind
    noise_sigma: float

    def domain(self, name: str) -> DomainConfig:
        for d in self.domains:
            if d.name == name:
                return d
        raise KeyError(f"no domain {name!r}; known: {[d.name for d in self.domains]}")

    @classmethod
    def load(cls, path: str | Path | None = None) -> BoardConfig:
        """Read and validate a board YAML; ``None`` means the shipped Xavier NX description."""
        path = Path(path) if path is not None else package_file(*DEFAULT_CONFIG)
        if not path.is_file():
            raise FileNotFoundError(f"board config not found: {path}")
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict):
            raise BoardConfigError(f"{path}: top level must be a mapping")
        try:
            return _parse(raw)
        except (KeyError, TypeError) as exc:
            raise BoardConfigError(f"{path}: missing or malformed field {exc}") from exc


def _positive(value: Any, what: str) -> float:
    v = float(value)
    if not v > 0:
        raise BoardConfigError(f"{what} must be > 0, got {value!r}")
    return v


def _parse(raw: dict[str, Any]) -> BoardConfig:
    tables = {k: tuple(round(float(f) * MHZ) for f in v) for k, v in raw["freq_tables_mhz"].items()}
    for k, t in tables.items():
        if not t or list(t) != sorted(set(t)):
            raise BoardConfigError(f"freq table {k!r} must be non-empty and strictly ascending")
    curves = {}
    for k, pts in raw["vf_curves"].items():
        f, v = zip(*pts, strict=True)
        if list(f) != sorted(f) or min(v) <= 0:
            raise BoardConfigError(f"V/f curve {k!r} needs ascending frequencies and positive volts")
        curves[k] = VfCurve(tuple(x * MHZ for x in f), tuple(float(x) for x in v))

    domains = []
    for d in raw["domains"]:
        if d["kind"] not in ("cpu", "gpu"):
            raise BoardConfigError(f"domain {d['name']!r}: kind must be cpu or gpu, got {d['kind']!r}")
        if d["freq_table"] not in tables or d["vf_curve"] not in curves:
            raise BoardConfigError(f"domain {d['name']!r}: unknown freq_table or vf_curve")
        cores = tuple(int(c) for c in d.get("cores", ()))
        if d["kind"] == "cpu" and not cores:
            raise BoardConfigError(f"cpu domain {d['name']!r} lists no cores")
        domains.append(DomainConfig(d["name"], d["kind"], tables[d["freq_table"]], cores,
                                    curves[d["vf_curve"]], d["zone"]))
    if len({d.name for d in domains}) != len(domains) or not any(d.kind == "gpu" for d in domains):
        raise BoardConfigError("domain names must be unique and one gpu domain must exist")
    n_cores = sum(len(d.cores) for d in domains)

    modes = {}
    for name, m in raw["modes"].items():
        mode = ModeConfig(name, int(m["id"]), int(m["online_cores"]), round(m["cpu_max_mhz"] * MHZ),
                          round(m["gpu_max_mhz"] * MHZ), round(m["emc_max_mhz"] * MHZ),
                          _positive(m["budget_w"], f"mode {name} budget_w"))
        if not 1 <= mode.online_cores <= n_cores:
            raise BoardConfigError(f"mode {name}: online_cores must be 1..{n_cores}")
        for d in domains:
            cap = mode.cpu_max_hz if d.kind == "cpu" else mode.gpu_max_hz
            if cap not in d.frequencies_hz:
                raise BoardConfigError(f"mode {name}: cap {cap} Hz is not in {d.name}'s table")
        modes[name] = mode
    if raw["default_mode"] not in modes:
        raise BoardConfigError(f"default_mode {raw['default_mode']!r} is not among {list(modes)}")

    p, rails = raw["power"], raw["power"]["rails"]
    power = PowerConfig(
        cpu_capacitance_f=_positive(p["cpu"]["capacitance_nf"], "cpu capacitance") * 1e-9,
        cpu_static_w_per_core=float(p["cpu"]["static_w_per_core"]),
        gpu_capacitance_f=_positive(p["gpu"]["capacitance_nf"], "gpu capacitance") * 1e-9,
        gpu_static_w=float(p["gpu"]["static_w"]),
        mem_weight={k: float(v) for k, v in p["mem_weight"].items()},
        soc_static_w=float(rails["soc_static_w"]), emc_w_at_1600mhz=float(rails["emc_w_at_1600mhz"]),
        cv_static_w=float(rails["cv_static_w"]), board_other_w=float(rails["board_other_w"]))

    t = raw["thermal"]
    names = {d.name for d in domains}
    zones = []
    for z in t["zones"]:
        zone = ZoneConfig(z["name"], tuple(z["heated_by"]), float(z["r_c_per_w"]),
                          _positive(z["tau_s"], f"zone {z['name']} tau_s"), float(z["trip_c"]))
        if not set(zone.heated_by) <= names:
            raise BoardConfigError(f"zone {zone.name}: heated_by names unknown domains {zone.heated_by}")
        zones.append(zone)
    zone_names = {z.name for z in zones}
    for d in domains:
        if d.zone not in zone_names:
            raise BoardConfigError(f"domain {d.name}: zone {d.zone!r} is not a thermal zone")
    thermal = ThermalConfig(float(t["ambient_c"]), float(t["sink"]["r_c_per_w"]),
                            _positive(t["sink"]["tau_s"], "sink tau_s"), _positive(t["poll_s"], "poll_s"),
                            _positive(t["throttle_step"], "throttle_step"), int(t["max_cooling_state"]),
                            float(t["hysteresis_c"]), tuple(zones))

    lat = raw["latency"]
    latency = {}
    for kind in ("cpu", "gpu"):
        k = lat[kind]
        pf = float(k["parallel_fraction"])
        if not 0 <= pf <= 1:
            raise BoardConfigError(f"latency.{kind}.parallel_fraction must be in [0, 1]")
        latency[kind] = LatencyKindConfig(_positive(k["macs_per_cycle"], f"{kind} macs_per_cycle"),
                                          float(k["overhead_s"]), pf)
    noise = float(lat.get("noise_sigma", 0.0))
    if noise < 0:
        raise BoardConfigError("latency.noise_sigma must be >= 0")
    return BoardConfig(str(raw["name"]), raw["default_mode"], tuple(domains), modes, power, thermal,
                       latency, noise)
