"""LinuxPlatform on fake boards: discovery, reads, writes, refusals, monitoring-only mode."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.linux import LinuxPlatform
from dynofa_ros.platform.thermal import VALID_RANGE_C
from dynofa_ros.platform.types import DvfsSetting

CPU = "/sys/devices/system/cpu"
XAVIER_GPU = "/sys/devices/gpu.0/devfreq/17000000.gv11b"


def platform(tree, tmp_path: Path, **kw) -> LinuxPlatform:
    kw.setdefault("use_nvml", False)
    return LinuxPlatform(tree.root, state_file=tmp_path / "state.json", **kw)


EXPECTED_DOMAINS = {
    "xavier-nx-jp4": ["cpu0", "cpu2", "cpu4", "gpu", "emc"],
    "xavier-nx-jp5": ["cpu0", "cpu2", "cpu4", "gpu", "emc"],
    "orin-jp6": ["cpu0", "cpu4", "gpu"],
    "laptop-intel-pstate": ["cpu0", "cpu1", "cpu2", "cpu3"],
    "laptop-acpi": ["cpu0", "cpu1"],
    "tx2-jp4": ["cpu0", "cpu1", "gpu", "emc"],
    "nano-jp4": ["cpu0", "gpu", "emc"],
    "tx1-per-cpu": ["cpu0", "gpu", "emc"],
    "agx-xavier-jp4": ["cpu0", "cpu2", "cpu4", "cpu6", "gpu", "emc"],
    "agx-xavier-jp5": ["cpu0", "cpu2", "cpu4", "cpu6", "gpu", "emc"],
    "agx-orin-jp5": ["cpu0", "cpu4", "cpu8", "gpu", "emc"],
    "agx-orin-jp6": ["cpu0", "cpu4", "cpu8", "gpu", "emc"],
    "thor-jp7": [f"cpu{c}" for c in range(14)] + ["gpu", "emc"],
}


def test_discovery_on_every_board(any_board, tmp_path: Path) -> None:
    with platform(any_board, tmp_path) as p:
        doms = {d.name: d for d in p.domains()}
        assert list(doms) == EXPECTED_DOMAINS[any_board.board]
        assert doms["cpu0"].frequencies_hz == tuple(k * 1000 for k in any_board.cpu_khz)
        assert list(doms["cpu0"].frequencies_hz) == sorted(doms["cpu0"].frequencies_hz)
        assert all(d.writable == (d.kind != "emc") for d in doms.values())
        if "gpu" in doms:
            assert doms["gpu"].frequencies_hz == any_board.gpu_hz
        state = p.read()
        assert state.simulated is False and set(state.domains) == set(doms)
        low, high = VALID_RANGE_C
        assert all(low <= t <= high for t in state.temperatures_c.values()) and state.temperatures_c


def test_xavier_snapshot(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp4")
    with platform(t, tmp_path) as p:
        assert [d.cores for d in p.domains() if d.kind == "cpu"] == [(0, 1), (2, 3), (4, 5)]
        t.proc_stat({c: (1000 * (c + 1) + (90 if c < 2 else 10), 4000 * (c + 1) + (10 if c < 2 else 90))
                     for c in range(6)})
        s = p.read()
        assert s.domains["cpu0"].utilisation == pytest.approx(0.9)
        assert s.domains["cpu2"].utilisation == pytest.approx(0.1)
        assert (s.domains["cpu0"].cur_hz, s.domains["cpu0"].governor) == (1_420_800_000, "schedutil")
        assert s.domains["cpu0"].online_cores == 2
        assert s.domains["gpu"].utilisation == pytest.approx(0.25) and s.domains["gpu"].cur_hz == 1_109_250_000
        assert s.domains["emc"].cur_hz == 1_866_000_000
        assert s.power_w == pytest.approx({"VDD_IN": 4.6, "VDD_CPU_GPU_CV": 1.2, "VDD_SOC": 1.35})
        assert "PMIC-Die" not in s.temperatures_c and "Tboard_tegra" not in s.temperatures_c
        assert not any(s.throttled.values())
        assert s.energy_j > 0  # VDD_IN integrated from construction to now
        t.write("/sys/bus/i2c/drivers/ina3221x/7-0040/iio:device0/in_power0_input", 10000)
        e1 = p.read().energy_j
        assert e1 > s.energy_j


def test_throttling_seen_when_pinned_domain_runs_slower(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp5")
    with platform(t, tmp_path) as p:
        assert p.apply([DvfsSetting("gpu", freq_hz=1_109_250_000), DvfsSetting("cpu0", freq_hz=1_907_200_000)]).ok
        t.write(f"{XAVIER_GPU}/cur_freq", 803_250_000)  # the kernel capped it
        t.write(f"{CPU}/cpufreq/policy0/scaling_cur_freq", 1_190_400)
        t.write("/sys/class/thermal/thermal_zone0/temp", 89000)  # BCPU past its passive trip
        s = p.read()
        assert s.throttled["gpu"] and s.throttled["cpu0"] and not s.throttled["cpu2"]
        assert s.throttled["BCPU-therm"] and not s.throttled["GPU-therm"]


def test_apply_writes_files(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp4")
    with platform(t, tmp_path) as p:
        r = p.apply([DvfsSetting("cpu0", freq_hz=729_600_000), DvfsSetting("gpu", freq_hz=510_000_000),
                     DvfsSetting("cpu4", online_cores=0), DvfsSetting("cpu2", online_cores=1)])
        assert r.ok and len(r.applied) == 4
        assert t.read(f"{CPU}/cpufreq/policy0/scaling_governor") == "userspace"
        assert t.read(f"{CPU}/cpufreq/policy0/scaling_setspeed") == "729600"
        assert (t.read(f"{XAVIER_GPU}/min_freq"), t.read(f"{XAVIER_GPU}/max_freq")) == ("510000000",) * 2
        assert [t.read(f"{CPU}/cpu{c}/online") for c in (2, 3, 4, 5)] == ["1", "0", "0", "0"]
        s = p.read()
        assert [s.domains[d].online_cores for d in ("cpu0", "cpu2", "cpu4")] == [2, 1, 0]
        assert p.apply([DvfsSetting("cpu4", freq_hz=729_600_000, online_cores=2)]).ok  # back up, then pinned
        assert t.read(f"{CPU}/cpu5/online") == "1"


def test_refusals_name_the_problem(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp4")
    before = t.snapshot()
    with platform(t, tmp_path) as p:
        r = p.apply([DvfsSetting("cpu0", freq_hz=1_000_000_000), DvfsSetting("gpu", freq_hz=500_000_000),
                     DvfsSetting("emc", freq_hz=1_866_000_000), DvfsSetting("npu", freq_hz=1),
                     DvfsSetting("cpu0", online_cores=0), DvfsSetting("cpu2", online_cores=3),
                     DvfsSetting("gpu", online_cores=1), DvfsSetting("cpu4", freq_hz=729_600_000, online_cores=0)])
        reasons = [why for _, why in r.refused]
        assert not r.applied and len(reasons) == 8
        assert "not offered" in reasons[0] and "not offered" in reasons[1]
        assert "read-only" in reasons[2] and "unknown domain 'npu'" in reasons[3]
        assert "impossible" in reasons[4] and "impossible" in reasons[5]
        assert "cpu domains only" in reasons[6] and "no online core" in reasons[7]
        assert t.snapshot() == before and not (tmp_path / "state.json").exists()


def test_intel_pstate_accepts_any_khz_in_cpuinfo_range(make_board, tmp_path: Path) -> None:
    t = make_board("laptop-intel-pstate")
    with platform(t, tmp_path) as p:
        r = p.apply([DvfsSetting("cpu1", freq_hz=2_345_000_000), DvfsSetting("cpu2", freq_hz=5_000_000_000),
                     DvfsSetting("cpu3", freq_hz=2_000_000_500)])
        assert r.applied == [DvfsSetting("cpu1", freq_hz=2_345_000_000)]
        assert "outside" in r.refused[0][1] and "whole number of kHz" in r.refused[1][1]
        assert t.read(f"{CPU}/cpufreq/policy1/scaling_min_freq") == "2345000"
        assert t.read(f"{CPU}/cpufreq/policy1/scaling_max_freq") == "2345000"
    assert t.read(f"{CPU}/cpufreq/policy1/scaling_min_freq") == "400000"  # restored on close
    assert t.read(f"{CPU}/cpufreq/policy1/scaling_max_freq") == "4700000"


def test_rapl_power_and_energy_in_snapshot(make_board, tmp_path: Path) -> None:
    t = make_board("laptop-intel-pstate")
    with platform(t, tmp_path) as p:
        t.write("/sys/class/powercap/intel-rapl:0/energy_uj", 20_000_000)  # wraps: +~20.3 J
        s = p.read()
        assert s.energy_j == pytest.approx(20.0 + (262143328850 - 262143000000) * 1e-6)
        assert s.power_w["rapl:package-0"] > 0 and "rapl:core" not in s.power_w


def test_nvml_gpus_are_read_only_domains(make_board, tmp_path: Path, fake_nvml) -> None:
    t = make_board("laptop-intel-pstate")
    with platform(t, tmp_path, use_nvml=True, nvml_module=fake_nvml) as p:
        assert [d.name for d in p.domains()][-2:] == ["nvml0", "nvml1"]
        r = p.apply([DvfsSetting("nvml0", freq_hz=1_000_000_000)])
        assert "read-only" in r.refused[0][1]
        fake_nvml.energy_mj[0] += 3000  # +3 J on the GPU with an energy counter
        s = p.read()
        assert s.power_w["nvml:gpu0"] == 250.0 and s.temperatures_c["nvml:gpu1"] == 41.0
        assert s.domains["nvml0"].cur_hz == 1_755_000_000 and s.throttled["nvml1"]
        assert s.energy_j >= 3.0  # RAPL (unchanged) + NVML counter + integrated power of the other GPU
        assert s.power_source == "rapl:package-0+nvml:gpu0+nvml:gpu1"
        assert s.board_power_w == pytest.approx(s.power_w["rapl:package-0"] + 250.0 + 70.0)
    assert fake_nvml.shutdown


def test_permission_denied_switches_to_monitoring_only(make_board, tmp_path: Path, monkeypatch, caplog) -> None:
    t = make_board("xavier-nx-jp4")
    before = t.snapshot()

    def denied(path: Path, value: object) -> None:  # what the kernel answers a non-root writer
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(sysfs, "write_value", denied)
    with platform(t, tmp_path) as p, caplog.at_level(logging.WARNING):
        r1 = p.apply([DvfsSetting("cpu0", freq_hz=729_600_000), DvfsSetting("gpu", freq_hz=510_000_000)])
        r2 = p.apply([DvfsSetting("cpu2", online_cores=1)])
        assert r1.refused[0][1].startswith("monitoring-only: permission denied")
        assert [why for _, why in r1.refused[1:] + r2.refused] == ["monitoring-only", "monitoring-only"]
        assert p.monitoring_only and not any(d.writable for d in p.domains())
        assert len([r for r in caplog.records if "monitoring-only" in r.getMessage()]) == 1
        assert p.read().domains["cpu0"].cur_hz == 1_420_800_000  # still monitoring
    assert t.snapshot() == before and not (tmp_path / "state.json").exists()  # nothing changed: no leftover


def test_allow_write_false(make_board, tmp_path: Path) -> None:
    t = make_board("orin-jp6")
    with platform(t, tmp_path, allow_write=False) as p:
        assert not any(d.writable for d in p.domains())
        assert p.apply([DvfsSetting("gpu", freq_hz=612_000_000)]).refused[0][1] == "monitoring-only"
        s = p.read()
        assert s.power_w["VDD_IN"] == pytest.approx(5.04 * 1.5) and "NC" not in s.power_w
        assert s.domains["gpu"].utilisation == pytest.approx(0.6)


def test_unreadable_state_file_blocks_writes(make_board, tmp_path: Path, caplog) -> None:
    t = make_board("laptop-acpi")
    (tmp_path / "state.json").write_text("{not json")
    with caplog.at_level(logging.WARNING), platform(t, tmp_path) as p:
        assert p.monitoring_only and "monitoring-only: unreadable state file" in caplog.text
    assert (tmp_path / "state.json").read_text() == "{not json"  # left for a human to check


def test_inactive_policy_reads_as_offline(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp4")
    with platform(t, tmp_path) as p:
        assert p.apply([DvfsSetting("cpu4", online_cores=0)]).ok
        t.path(f"{CPU}/cpufreq/policy4/scaling_cur_freq").unlink()  # the kernel answers EBUSY/ENOENT here
        s = p.read().domains["cpu4"]
        assert (s.cur_hz, s.online_cores, s.available_hz[-1]) == (0, 0, 1_907_200_000)
        assert "no online core" in p.apply([DvfsSetting("cpu4", freq_hz=729_600_000)]).refused[0][1]
