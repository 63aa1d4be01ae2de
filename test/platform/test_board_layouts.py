"""Every board layout in conftest.BOARDS read end to end: CPU clusters, GPU devfreq, rails and board power
(with its source), thermal zones and EMC as far as the board exposes them; then a DVFS set and its restore."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from dynofa_ros.platform.cpufreq import discover_policies
from dynofa_ros.platform.devfreq import EmcReader, discover_gpu
from dynofa_ros.platform.linux import LinuxPlatform
from dynofa_ros.platform.power import BoardPowerSource, board_power_source, discover_rails
from dynofa_ros.platform.thermal import discover_zones, read_temperatures
from dynofa_ros.platform.types import DvfsSetting

from .conftest import BOARDS, CPU, FakeTree

NAN = float("nan")
NX_ZONES = ("BCPU-therm", "MCPU-therm", "GPU-therm", "PLL-therm", "Tdiode_tegra", "thermal-fan-est")
T210_ZONES = ("AO-therm", "CPU-therm", "GPU-therm", "PLL-therm", "thermal-fan-est")
AGX_XAVIER_ZONES = ("AO-therm", "CPU-therm", "GPU-therm", "PLL-therm", "AUX-therm", "Tboard_tegra", "Tdiode_tegra",
                    "thermal-fan-est")
AGX_XAVIER_RAILS = {"GPU": 0.31, "CPU": 0.62, "SOC": 1.24, "CV": 0.0, "VDDRQ": 0.46, "SYS5V": 1.85}
AGX_ORIN_RAILS = {"VDD_GPU_SOC": 4.2, "VDD_CPU_CV": 2.0, "VIN_SYS_5V0": 4.96, "VDDQ_VDD2_1V8AO": 0.9}
AGX_ORIN_SUM = "sum of rails VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"  # VDDQ_VDD2_1V8AO is fed by VIN_SYS_5V0


@dataclass(frozen=True)
class Layout:
    """What a board exposes, as the platform should read it."""

    clusters: dict[str, tuple[int, ...]]  # cpu domain -> cores
    gpu: tuple[str, float] | None  # devfreq node, load (nan: no load file)
    rails: dict[str, float]  # W
    power_source: str  # "" when there is no board power
    board_w: float
    zones: tuple[str, ...]  # zones with a valid reading (the others are bogus and dropped)
    emc: tuple[int, int, int, float] | None  # cur, min, max (Hz; 0 = no limit file), utilisation (nan: no actmon)
    settings: tuple[DvfsSetting, ...]  # a set the board accepts


def _pairs(first: int, count: int, step: int = 2) -> dict[str, tuple[int, ...]]:
    return {f"cpu{c}": tuple(range(c, c + step)) for c in range(first, first + count * step, step)}


LAYOUTS: dict[str, Layout] = {
    "xavier-nx-jp4": Layout(
        _pairs(0, 3), ("17000000.gv11b", 0.25), {"VDD_IN": 4.6, "VDD_CPU_GPU_CV": 1.2, "VDD_SOC": 1.35}, "VDD_IN", 4.6,
        NX_ZONES, (1866000000, 204000000, 1866000000, 0.25),
        (DvfsSetting("cpu2", freq_hz=729_600_000, online_cores=1), DvfsSetting("gpu", freq_hz=510_000_000))),
    "xavier-nx-jp5": Layout(
        _pairs(0, 3), ("17000000.gv11b", 0.25), {"VDD_IN": 4.6, "VDD_CPU_GPU_CV": 1.2, "VDD_SOC": 1.35}, "VDD_IN", 4.6,
        NX_ZONES, (1866000000, 204000000, 1866000000, 0.25),
        (DvfsSetting("cpu4", freq_hz=1_907_200_000, online_cores=1), DvfsSetting("gpu", freq_hz=510_000_000))),
    "orin-jp6": Layout(
        _pairs(0, 2, 4), ("17000000.gpu", 0.6),
        {"VDD_IN": 7.56, "VDD_CPU_GPU_CV": 2.52, "VDD_SOC": 2.016, "VDD_5V0_SYS": 0.5}, "VDD_IN", 7.56,
        ("cpu-thermal", "gpu-thermal", "soc0-thermal", "tj-thermal"), None,
        (DvfsSetting("cpu4", freq_hz=1_984_000_000, online_cores=2), DvfsSetting("gpu", freq_hz=612_000_000))),
    "tx2-jp4": Layout(
        {"cpu0": (0, 3, 4, 5), "cpu1": (1, 2)}, ("17000000.gp10b", 0.12),
        {"VDD_SYS_GPU": 0.15, "VDD_SYS_SOC": 0.46, "VDD_4V0_WIFI": 0.04, "VDD_IN": 2.1, "VDD_SYS_CPU": 0.23,
         "VDD_SYS_DDR": 0.31}, "VDD_IN", 2.1,
        ("BCPU-therm", "MCPU-therm", "GPU-therm", "PLL-therm", "Tboard_tegra", "Tdiode_tegra", "thermal-fan-est"),
        (1866000000, 40800000, 1866000000, 0.1),
        (DvfsSetting("cpu0", online_cores=2), DvfsSetting("cpu1", freq_hz=2_035_200_000),
         DvfsSetting("gpu", freq_hz=522_750_000))),
    "nano-jp4": Layout(
        {"cpu0": (0, 1, 2, 3)}, ("57000000.gpu", 0.3), {"POM_5V_IN": 2.9, "POM_5V_GPU": 0.21, "POM_5V_CPU": 0.62},
        "POM_5V_IN", 2.9, T210_ZONES, (1600000000, 204000000, 1600000000, 0.3),
        (DvfsSetting("cpu0", freq_hz=1_428_000_000, online_cores=2), DvfsSetting("gpu", freq_hz=614_400_000))),
    "tx1-per-cpu": Layout(
        {"cpu0": (0, 1, 2, 3)}, ("57000000.gpu", 0.3), {"VDD_IN": 3.4, "VDD_GPU": 0.18, "VDD_CPU": 0.56},
        "VDD_IN", 3.4, T210_ZONES, (1600000000, 204000000, 1600000000, 0.3),
        (DvfsSetting("cpu0", freq_hz=1_428_000_000, online_cores=3), DvfsSetting("gpu", freq_hz=614_400_000))),
    "agx-xavier-jp4": Layout(
        _pairs(0, 4), ("17000000.gv11b", 0.42), AGX_XAVIER_RAILS, "sum of rails GPU+CPU+SOC+CV+VDDRQ+SYS5V", 4.48,
        AGX_XAVIER_ZONES, (2133000000, 204000000, 2133000000, 0.2),
        (DvfsSetting("cpu6", freq_hz=2_265_600_000), DvfsSetting("cpu4", online_cores=1),
         DvfsSetting("gpu", freq_hz=1_377_000_000))),
    "agx-xavier-jp5": Layout(
        _pairs(0, 4), ("17000000.gv11b", 0.42), AGX_XAVIER_RAILS, "sum of rails GPU+CPU+SOC+CV+VDDRQ+SYS5V", 4.48,
        AGX_XAVIER_ZONES, (2133000000, 204000000, 2133000000, 0.2),
        (DvfsSetting("cpu0", freq_hz=729_600_000), DvfsSetting("cpu6", online_cores=0),
         DvfsSetting("gpu", freq_hz=318_750_000))),
    "agx-orin-jp5": Layout(
        _pairs(0, 3, 4), ("17000000.ga10b", 0.18), AGX_ORIN_RAILS, AGX_ORIN_SUM, 11.16,
        ("CPU-therm", "GPU-therm", "SOC0-therm", "SOC1-therm", "SOC2-therm", "tj-therm"),
        (3199000000, 204000000, 3199000000, 0.05),
        (DvfsSetting("cpu8", freq_hz=2_201_600_000, online_cores=2), DvfsSetting("gpu", freq_hz=918_000_000))),
    "agx-orin-jp6": Layout(
        _pairs(0, 3, 4), ("17000000.gpu", 0.18), AGX_ORIN_RAILS, AGX_ORIN_SUM, 11.16,
        ("cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"),
        (3199000000, 204000000, 3199000000, 0.1),
        (DvfsSetting("cpu0", freq_hz=1_113_600_000, online_cores=1), DvfsSetting("gpu", freq_hz=1_300_500_000))),
    "thor-jp7": Layout(
        {f"cpu{c}": (c,) for c in range(14)}, ("gpu-nvd-0", NAN),
        {"VDD_GPU": 2.0, "VDD_CPU_SOC_MSS": 6.5, "VIN_SYS_5V0": 6.5},
        "sum of rails VDD_GPU+VDD_CPU_SOC_MSS+VIN_SYS_5V0", 15.0,
        ("tj-thermal", "soc012-thermal", "cpu-thermal", "soc345-thermal"),
        (4266000000, 665600000, 4266000000, NAN),
        (DvfsSetting("cpu0", freq_hz=2_601_000_000), DvfsSetting("cpu13", online_cores=0),
         DvfsSetting("gpu", freq_hz=1_015_200_000))),
    "laptop-intel-pstate": Layout(
        _pairs(0, 4, 1), None, {"rapl:package-0": 0.0}, "rapl:package-0", 0.0,  # counter unchanged: 0 W
        ("acpitz#0", "acpitz#1", "x86_pkg_temp"), None,
        (DvfsSetting("cpu1", freq_hz=2_345_000_000), DvfsSetting("cpu3", online_cores=0))),
    "laptop-acpi": Layout(
        _pairs(0, 2, 1), None, {"power_meter:power1": 12.5}, "", NAN, ("x86_pkg_temp",), None,
        (DvfsSetting("cpu0", freq_hz=800_000_000), DvfsSetting("cpu1", online_cores=0))),
}


def test_every_board_has_a_layout() -> None:
    assert set(LAYOUTS) == set(BOARDS)


def same(a: float, b: float) -> bool:
    return a == pytest.approx(b) if not math.isnan(b) else math.isnan(a)


@pytest.mark.parametrize("board", sorted(LAYOUTS))
def test_board_is_read_as_laid_out(make_board, tmp_path: Path, board: str) -> None:
    t, want = make_board(board), LAYOUTS[board]
    with LinuxPlatform(t.root, state_file=tmp_path / "state.json", use_nvml=False) as p:
        doms = {d.name: d for d in p.domains()}
        assert {n: d.cores for n, d in doms.items() if d.kind == "cpu"} == want.clusters
        s1 = p.read()
        s = p.read()
    gpu = discover_gpu(t.root)
    if want.gpu is None:
        assert gpu is None and "gpu" not in s.domains
    else:
        assert gpu.name == want.gpu[0] and doms["gpu"].frequencies_hz == t.gpu_hz
        assert s.domains["gpu"].cur_hz == t.gpu_hz[-1] and same(s.domains["gpu"].utilisation, want.gpu[1])
    assert s.power_w == pytest.approx(want.rails)
    assert s.power_source == want.power_source and same(s.board_power_w, want.board_w)
    if want.power_source:  # energy integrates the board power: finite, never decreasing
        assert 0.0 <= s1.energy_j <= s.energy_j
    else:
        assert math.isnan(s.energy_j)
    assert sorted(s.temperatures_c) == sorted(want.zones)
    if want.emc is None:
        assert "emc" not in s.domains
    else:
        e = s.domains["emc"]
        assert (e.cur_hz, e.min_hz, e.max_hz) == want.emc[:3] and same(e.utilisation, want.emc[3])
        assert not doms["emc"].writable


def _pinned_hz(t: FakeTree, domain: str) -> int:
    """The frequency a cpu domain is pinned at: setspeed under userspace, else min = max."""
    pol = next(p for p in discover_policies(t.root) if f"cpu{p.index}" == domain)
    s = pol.read()
    return (s.setspeed_khz if s.governor == "userspace" else s.min_khz if s.min_khz == s.max_khz else 0) * 1000


@pytest.mark.parametrize("board", sorted(LAYOUTS))
def test_dvfs_set_then_restore(make_board, tmp_path: Path, board: str) -> None:
    t, want = make_board(board), LAYOUTS[board]
    before = t.controlled()
    with LinuxPlatform(t.root, state_file=tmp_path / "state.json", use_nvml=False) as p:
        result = p.apply(list(want.settings))
        assert result.ok, result.refused
        s = p.read()
        for setting in want.settings:
            if setting.online_cores is not None:
                assert s.domains[setting.domain].online_cores == setting.online_cores
            if setting.freq_hz is not None and setting.domain == "gpu":
                assert s.domains["gpu"].min_hz == s.domains["gpu"].max_hz == setting.freq_hz
            elif setting.freq_hz is not None:
                assert _pinned_hz(t, setting.domain) == setting.freq_hz
        assert t.controlled() != before
    assert t.controlled() == before and not (tmp_path / "state.json").exists()


def test_cold_readings_are_kept_sentinels_dropped(make_board) -> None:
    t = make_board("tx2-jp4")
    for n, milli in enumerate((-45000, -51000, -100000, -100500, -256000, 151000)):
        t.write(f"/sys/class/thermal/thermal_zone{n}/temp", milli)
    temps, _ = read_temperatures(discover_zones(t.root))
    assert (temps["BCPU-therm"], temps["MCPU-therm"], temps["GPU-therm"]) == (-45.0, -51.0, -100.0)
    assert not {"PLL-therm", "Tboard_tegra", "Tdiode_tegra"} & set(temps)  # below -100, -256 °C, above 150 °C


def test_board_power_sums_top_level_rails_only(make_board) -> None:
    rails = discover_rails(make_board("agx-orin-jp6").root)
    source = board_power_source(rails)
    assert source == BoardPowerSource(("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"), AGX_ORIN_SUM)
    readings = {r.name: r.read_w() for r in rails}
    assert source.watts(readings) == pytest.approx(11.16)
    del readings["VDD_CPU_CV"]
    assert source.watts(readings) is None  # a missing rail: no sum rather than a low one


def test_board_power_sum_is_integrated_into_energy(make_board, tmp_path: Path) -> None:
    t = make_board("agx-xavier-jp4")
    with LinuxPlatform(t.root, state_file=tmp_path / "state.json", use_nvml=False) as p:
        e0 = p.read().energy_j
        t.write("/sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0/in_power0_input", 20000)  # GPU rail to 20 W
        s = p.read()
        assert s.board_power_w == pytest.approx(4.48 - 0.31 + 20.0) and s.energy_j > e0


def test_emc_limits_from_clock_debugfs_before_bwmgr_and_none_without(make_board) -> None:
    t = make_board("nano-jp4")
    t.write("/sys/kernel/debug/clk/emc/clk_min_rate", 408000000)  # newer kernels' common clock debugfs
    t.write("/sys/kernel/debug/clk/emc/clk_max_rate", 1331200000)
    s = EmcReader(t.root).read()
    assert (s.min_hz, s.max_hz) == (408000000, 1331200000)
    for name in ("clk/emc/clk_min_rate", "clk/emc/clk_max_rate", "tegra_bwmgr/emc_min_rate",
                 "tegra_bwmgr/emc_max_rate", "cactmon/mc_all"):
        t.path(f"/sys/kernel/debug/{name}").unlink()
    s = EmcReader(t.root).read()
    assert (s.cur_hz, s.min_hz, s.max_hz) == (1600000000, 0, 0) and math.isnan(s.utilisation)


def test_independent_per_cpu_folders_are_one_domain_each(tmp_path: Path) -> None:
    """Per-cpu folders without links between them (one policy per cpu, no policyN folders)."""
    t = FakeTree(tmp_path, "per-cpu")
    t.cpus(2)
    for c in range(2):
        t.policy(c, str(c), (500000, 1000000), "userspace performance", "performance", "cpufreq-dt",
                 (500000, 1000000), 1000000, per_cpu=True)
    with LinuxPlatform(t.root, state_file=tmp_path / "state.json", use_nvml=False) as p:
        assert [(d.name, d.cores) for d in p.domains()] == [("cpu0", (0,)), ("cpu1", (1,))]
        assert p.apply([DvfsSetting("cpu1", freq_hz=500_000_000)]).ok
        assert t.read(f"{CPU}/cpu1/cpufreq/scaling_setspeed") == "500000"
    assert t.read(f"{CPU}/cpu1/cpufreq/scaling_governor") == "performance"
