"""GPU devfreq, EMC, power rails, RAPL, thermal zones and NVML against fake trees / a fake pynvml."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.devfreq import DevfreqSample, EmcReader, discover_gpu
from dynofa_ros.platform.nvml import NvmlReader
from dynofa_ros.platform.power import (
    BoardPowerSource,
    EnergyIntegrator,
    board_power_source,
    discover_rails,
    discover_rapl,
    rapl_board_zones,
)
from dynofa_ros.platform.thermal import discover_zones, read_temperatures


@pytest.mark.parametrize("board,name,load", [("xavier-nx-jp4", "17000000.gv11b", 0.25),
                                             ("xavier-nx-jp5", "17000000.gv11b", 0.25),
                                             ("orin-jp6", "17000000.gpu", 0.6)])
def test_gpu_devfreq_discovery_and_read(make_board, board: str, name: str, load: float) -> None:
    t = make_board(board)
    gpu = discover_gpu(t.root)
    assert gpu is not None and gpu.name == name
    assert gpu.available_hz == t.gpu_hz
    s = gpu.read()
    assert s.cur_hz == s.max_hz == t.gpu_hz[-1] and s.min_hz == t.gpu_hz[0]
    assert s.load == pytest.approx(load) and s.governor == "nvhost_podgov"


def test_no_gpu_on_laptop(make_board) -> None:
    assert discover_gpu(make_board("laptop-acpi").root) is None


def test_gpu_pin_writes_min_and_max_and_refuses_unknown_steps(make_board) -> None:
    t = make_board("xavier-nx-jp4")
    gpu = discover_gpu(t.root)
    base = "/sys/devices/gpu.0/devfreq/17000000.gv11b"
    gpu.pin(510_000_000)  # lowering: min first, then max
    assert (t.read(f"{base}/min_freq"), t.read(f"{base}/max_freq")) == ("510000000", "510000000")
    gpu.pin(1_109_250_000)  # raising: max first, then min
    assert (t.read(f"{base}/min_freq"), t.read(f"{base}/max_freq")) == ("1109250000", "1109250000")
    assert "not offered" in gpu.refusal(500_000_000)
    with pytest.raises(ValueError, match="not offered"):
        gpu.pin(500_000_000)
    assert t.read(f"{base}/governor") == "nvhost_podgov"


def test_devfreq_throttle_rule() -> None:
    assert DevfreqSample(600, 1000, 1000, "nvhost_podgov", 0.5).throttled()
    assert not DevfreqSample(600, 100, 1000, "nvhost_podgov", 0.5).throttled()
    assert DevfreqSample(600, 100, 1000, "performance", 0.5).throttled()


def test_emc_read_only(make_board) -> None:
    t = make_board("xavier-nx-jp4")
    emc = EmcReader(t.root)
    s = emc.read()
    assert (s.cur_hz, s.min_hz, s.max_hz) == (1866000000, 204000000, 1866000000)
    assert s.utilisation == pytest.approx(0.25)
    assert not EmcReader(make_board("laptop-acpi").root).available
    with pytest.raises(RuntimeError, match="no readable EMC"):
        EmcReader(make_board("orin-jp6").root).read()


def test_ina3221_jetpack4_iio_mw(make_board) -> None:
    found = discover_rails(make_board("xavier-nx-jp4").root)
    rails = {r.name: r.read_w() for r in found}
    assert rails == pytest.approx({"VDD_IN": 4.6, "VDD_CPU_GPU_CV": 1.2, "VDD_SOC": 1.35})
    source = board_power_source(found)
    assert source == BoardPowerSource(("VDD_IN",), "VDD_IN")
    assert source.watts(rails) == pytest.approx(4.6)  # VDD_IN alone, not 4.6 + 1.2 + 1.35


def test_ina3221_hwmon_voltage_times_current(make_board) -> None:
    found = discover_rails(make_board("xavier-nx-jp5").root)
    rails = {r.name: r.read_w() for r in found}
    assert rails == pytest.approx({"VDD_IN": 5.0 * 0.92, "VDD_CPU_GPU_CV": 5.0 * 0.24, "VDD_SOC": 5.0 * 0.27})
    assert board_power_source(found).watts(rails) == pytest.approx(4.6)


def test_orin_rails_skip_nc_and_sum_and_dedupe_class_link(make_board) -> None:
    rails = discover_rails(make_board("orin-jp6").root)
    names = [r.name for r in rails]
    assert names == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC", "VDD_5V0_SYS"]  # no NC, no sum, hwmon1 once
    assert rails[0].read_w() == pytest.approx(5.04 * 1.5)


def test_generic_hwmon_power_microwatts(make_board) -> None:
    found = discover_rails(make_board("laptop-acpi").root)
    assert {r.name: r.read_w() for r in found} == pytest.approx({"power_meter:power1": 12.5})
    assert board_power_source(found) is None  # not an INA3221: no board power


def test_rapl_wraparound_and_power(make_board) -> None:
    t = make_board("laptop-intel-pstate")
    zones = discover_rapl(t.root)
    assert [z.name for z in zones] == ["package-0"]  # the core sub-zone is part of the package
    z = zones[0]
    assert z.update(10.0) == 0.0
    t.write("/sys/class/powercap/intel-rapl:0/energy_uj", 1_000_000)  # wrapped past 262143328850
    energy = z.update(12.0)
    delta_uj = 262143328850 - 262143000000 + 1_000_000
    assert energy == pytest.approx(delta_uj * 1e-6)
    assert z.power_w == pytest.approx(delta_uj * 1e-6 / 2.0)
    t.write("/sys/class/powercap/intel-rapl:0/energy_uj", 3_000_000)
    assert z.update(13.0) == pytest.approx((delta_uj + 2_000_000) * 1e-6)
    assert z.power_w == pytest.approx(2.0)


def test_rapl_unreadable_energy_is_skipped(make_board, monkeypatch: pytest.MonkeyPatch) -> None:
    t = make_board("laptop-intel-pstate")
    real_read = sysfs.read_optional_int
    monkeypatch.setattr(sysfs, "read_optional_int",  # energy_uj is 0400 root on current kernels
                        lambda p: None if p.name == "energy_uj" else real_read(p))
    assert discover_rapl(t.root) == []


def test_rapl_board_zones_prefer_psys(make_board) -> None:
    t = make_board("laptop-intel-pstate")
    for name, value in {"name": "psys", "energy_uj": 5, "max_energy_range_uj": 262143328850}.items():
        t.write(f"/sys/class/powercap/intel-rapl:1/{name}", value)
    zones = discover_rapl(t.root)
    assert sorted(z.name for z in zones) == ["package-0", "psys"]
    assert [z.name for z in rapl_board_zones(zones)] == ["psys"]


def test_energy_integrator_trapezoid() -> None:
    e = EnergyIntegrator()
    assert e.add(0.0, 2.0) == 0.0
    assert e.add(1.0, 4.0) == pytest.approx(3.0)
    assert e.add(3.0, 4.0) == pytest.approx(11.0)
    with pytest.raises(ValueError, match="backwards"):
        e.add(2.0, 1.0)


def test_thermal_filters_bogus_zones_and_trips(make_board) -> None:
    t = make_board("xavier-nx-jp4")
    temps, tripped = read_temperatures(discover_zones(t.root))
    assert "PMIC-Die" not in temps and "Tboard_tegra" not in temps  # constant 100 °C and -256 °C
    assert temps["GPU-therm"] == pytest.approx(39.0) and temps["Tdiode_tegra"] == pytest.approx(40.25)
    assert not any(tripped.values())
    t.write("/sys/class/thermal/thermal_zone2/temp", 90000)  # above the 88 °C passive trip
    t.write("/sys/class/thermal/thermal_zone3/temp", 151000)  # out of range
    temps, tripped = read_temperatures(discover_zones(t.root))
    assert tripped["GPU-therm"] and not tripped["BCPU-therm"] and "PLL-therm" not in temps


def test_thermal_duplicate_types_and_active_trips(make_board) -> None:
    temps, tripped = read_temperatures(discover_zones(make_board("laptop-intel-pstate").root))
    assert temps == pytest.approx({"acpitz#0": 45.0, "acpitz#1": 46.0, "x86_pkg_temp": 52.0})
    assert tripped == {"acpitz#0": False, "acpitz#1": False, "x86_pkg_temp": True}


def test_nvml_absent_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = NvmlReader()  # this machine: package installed, no driver library
    assert not reader.available and reader.read() == [] and reader.reason
    real_import = builtins.__import__

    def no_pynvml(name: str, *args: object, **kwargs: object) -> object:
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    reader = NvmlReader()
    assert not reader.available and "not installed" in reader.reason


def test_nvml_reads_with_a_fake_module(fake_nvml) -> None:
    reader = NvmlReader(fake_nvml)
    assert reader.available and reader.names == ["NVIDIA H100", "Tesla T4"]
    a, b = reader.read()
    assert (a.power_w, a.energy_j, a.sm_clock_hz, a.mem_clock_hz) == (250.0, 1000.0, 1_755_000_000, 2_619_000_000)
    assert a.utilisation == pytest.approx(0.37) and a.temperature_c == 41.0
    assert not a.throttled and b.throttled  # GPU idle is not throttling; SW power cap is
    assert b.energy_j is None and b.power_w == 70.0  # no energy counter on that GPU
    reader.close()
    assert fake_nvml.shutdown and reader.read() == []


def test_write_errors_name_the_file(tmp_path: Path) -> None:
    d = tmp_path / "attr"
    d.mkdir()  # a directory where an attribute is expected
    with pytest.raises(FileNotFoundError, match="attr"):
        sysfs.write_value(d, 1)
