"""Power rails and energy counters: Jetson INA3221 (both layouts), generic hwmon, Intel/AMD RAPL.

INA3221, JetPack 4 (iio): ``/sys/bus/i2c/drivers/ina3221x/<bus-addr>/iio:deviceN/rail_name_K`` and
``in_powerK_input`` (mW). JetPack 5+ (hwmon): ``/sys/bus/i2c/drivers/ina3221/<bus-addr>/hwmon/hwmonN/``
``inK_label``, ``inK_input`` (mV), ``currK_input`` (mA), P = V·I. Unconnected ("NC") channels and the
sum channel are skipped. Board power: VDD_IN (POM_5V_IN on Nano) is the board input and already
contains the other rails, so it is used alone. Boards without an input rail (AGX Xavier, AGX Orin,
Thor) get the sum of their top-level INA3221 rails, leaving out rails fed by another measured rail
(``SUB_RAILS``); :class:`BoardPowerSource` names which. Generic hwmon: ``powerK_input`` (µW). RAPL:
``/sys/class/powercap/intel-rapl:N/energy_uj`` (µJ), wrapping at ``max_energy_range_uj``; power
comes from successive reads. All read-only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from dynofa_ros.platform import sysfs

log = logging.getLogger(__name__)

INA_IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
INA_HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
HWMON_CLASS = "/sys/class/hwmon"
POWERCAP_DIR = "/sys/class/powercap"
BOARD_INPUT_RAILS = ("VDD_IN", "POM_5V_IN")  # VDD_IN: TX1, TX2, Xavier NX, Orin NX/Nano; POM_5V_IN: Nano
SUB_RAILS = {"VDDQ_VDD2_1V8AO": "VIN_SYS_5V0"}  # INA3221 rail -> the measured rail that feeds it (AGX Orin)


@dataclass(frozen=True)
class Rail:
    """One power rail: either a power file with a scale, or voltage (mV) and current (mA) files."""

    name: str
    power_file: Path | None = None
    power_scale_w: float = 0.0  # W per unit of power_file (1e-3 for mW, 1e-6 for µW)
    voltage_file: Path | None = None
    current_file: Path | None = None
    ina3221: bool = False  # a channel of a Jetson INA3221 (candidates for the board power sum)

    def read_w(self) -> float:
        if self.power_file is not None:
            return sysfs.read_int(self.power_file) * self.power_scale_w
        if self.voltage_file is None or self.current_file is None:
            raise ValueError(f"rail {self.name} has neither a power file nor voltage and current files")
        return sysfs.read_int(self.voltage_file) * sysfs.read_int(self.current_file) * 1e-6  # mV·mA = µW


def _skip_label(label: str) -> bool:
    return label.strip().upper() == "NC" or "sum" in label.lower()


def _ina_iio_rails(dev: Path) -> list[Rail]:
    rails = []
    for name_file in sorted(dev.glob("rail_name_*")):
        k = name_file.name.rsplit("_", 1)[1]
        label = sysfs.read_optional(name_file)
        power = dev / f"in_power{k}_input"
        if label and not _skip_label(label) and power.is_file():
            rails.append(Rail(name=label, power_file=power, power_scale_w=1e-3, ina3221=True))
    return rails


def _ina_hwmon_rails(dev: Path) -> list[Rail]:
    rails = []
    for label_file in sorted(dev.glob("in*_label")):
        m = re.fullmatch(r"in(\d+)_label", label_file.name)
        label = sysfs.read_optional(label_file)
        if not m or not label or _skip_label(label):
            continue
        volt, curr = dev / f"in{m.group(1)}_input", dev / f"curr{m.group(1)}_input"
        if volt.is_file() and curr.is_file():
            rails.append(Rail(name=label, voltage_file=volt, current_file=curr, ina3221=True))
    return rails


def _hwmon_power_rails(dev: Path, chip: str) -> list[Rail]:
    rails = []
    for power in sorted(dev.glob("power*_input")):
        m = re.fullmatch(r"power(\d+)_input", power.name)
        if m:
            label = sysfs.read_optional(dev / f"power{m.group(1)}_label") or f"power{m.group(1)}"
            rails.append(Rail(name=f"{chip}:{label}", power_file=power, power_scale_w=1e-6))
    return rails


def discover_rails(root: Path) -> list[Rail]:
    """All power rails under ``root``: INA3221 (iio or hwmon layout) and hwmon ``powerK_input``."""
    rails: list[Rail] = []
    seen: set[Path] = set()
    for dev in sorted(root.glob(INA_IIO_GLOB)):
        seen.add(dev.resolve())
        rails.extend(_ina_iio_rails(dev))
    for dev in sorted(root.glob(INA_HWMON_GLOB)):
        seen.add(dev.resolve())
        rails.extend(_ina_hwmon_rails(dev))
    hwmon = sysfs.under(root, HWMON_CLASS)
    for dev in sorted(hwmon.iterdir()) if hwmon.is_dir() else ():
        real = dev.resolve()
        if real in seen or not real.is_relative_to(root):
            continue
        seen.add(real)
        chip = sysfs.read_optional(dev / "name") or dev.name
        rails.extend(_ina_hwmon_rails(dev) if chip == "ina3221" else _hwmon_power_rails(dev, chip))
    names: set[str] = set()
    unique = []
    for rail in rails:  # two sensors may use one label; keep the first, say so
        if rail.name in names:
            log.warning("duplicate power rail label %r (%s) ignored", rail.name, rail.power_file or rail.voltage_file)
            continue
        names.add(rail.name)
        unique.append(rail)
    return unique


@dataclass(frozen=True)
class BoardPowerSource:
    """Which rails make up the board power, and the label an output gives that figure."""

    rails: tuple[str, ...]
    label: str  # "VDD_IN", or "sum of rails A+B+C" where the board has no input rail

    def watts(self, power_w: dict[str, float]) -> float | None:
        """The board power from one reading per rail; None when one of its rails did not read."""
        if any(name not in power_w for name in self.rails):
            return None
        return sum(power_w[name] for name in self.rails)


def board_power_source(rails: list[Rail]) -> BoardPowerSource | None:
    """The board input rail when there is one, else the sum of the top-level INA3221 rails; None without INA3221."""
    names = [r.name for r in rails if r.ina3221]
    board_input = next((n for n in BOARD_INPUT_RAILS if n in names), None)
    if board_input is not None:
        return BoardPowerSource((board_input,), board_input)
    top = tuple(n for n in names if SUB_RAILS.get(n) not in names)
    return BoardPowerSource(top, "sum of rails " + "+".join(top)) if top else None


@dataclass
class EnergyIntegrator:
    """Cumulative energy (J) from successive power readings, by the trapezoid rule."""

    energy_j: float = 0.0
    _last: tuple[float, float] | None = None

    def add(self, t_s: float, power_w: float) -> float:
        if self._last is not None:
            t0, p0 = self._last
            if t_s < t0:
                raise ValueError(f"time went backwards ({t_s} < {t0})")
            self.energy_j += 0.5 * (p0 + power_w) * (t_s - t0)
        self._last = (t_s, power_w)
        return self.energy_j


@dataclass
class RaplZone:
    """One top-level RAPL zone (package-N, psys) with wraparound-safe cumulative energy."""

    name: str
    energy_file: Path
    max_range_uj: int
    total_uj: int = 0
    _last_raw: int | None = None
    _last_t: float | None = None
    power_w: float = field(default=float("nan"))

    def update(self, t_s: float) -> float:
        """Read the counter at time ``t_s``; returns energy (J) since the first update, sets ``power_w``."""
        raw = sysfs.read_int(self.energy_file)
        if self._last_raw is not None and self._last_t is not None:
            delta = raw - self._last_raw
            if delta < 0:  # the counter wrapped at max_energy_range_uj
                delta += self.max_range_uj
            self.total_uj += delta
            dt = t_s - self._last_t
            self.power_w = delta * 1e-6 / dt if dt > 0 else self.power_w
        self._last_raw, self._last_t = raw, t_s
        return self.total_uj * 1e-6


def discover_rapl(root: Path) -> list[RaplZone]:
    """Readable top-level RAPL zones (energy_uj needs root on current kernels: unreadable = skipped)."""
    base = sysfs.under(root, POWERCAP_DIR)
    zones = []
    for dev in sorted(base.iterdir()) if base.is_dir() else ():
        if not re.fullmatch(r"intel-rapl:\d+", dev.name):
            continue
        energy, max_range = dev / "energy_uj", sysfs.read_optional_int(dev / "max_energy_range_uj")
        if sysfs.read_optional_int(energy) is None or not max_range:
            log.info("RAPL zone %s unreadable (energy_uj needs root); skipped", dev)
            continue
        zones.append(RaplZone(name=sysfs.read_optional(dev / "name") or dev.name, energy_file=energy,
                              max_range_uj=max_range))
    return zones


def rapl_board_zones(zones: list[RaplZone]) -> list[RaplZone]:
    """The zones whose sum is the energy counted for the board: psys alone (it includes the
    packages) when present, else every package."""
    psys = [z for z in zones if z.name == "psys"]
    return psys or [z for z in zones if z.name.startswith("package")]
