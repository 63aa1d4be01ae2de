"""sysfs helpers, cpufreq policies and CPU cores against fake trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.cores import CpuCores, get_affinity, read_cpu_times, set_affinity, utilisation
from dynofa_ros.platform.cpufreq import PolicySample, discover_policies, intel_pstate_mode


def test_read_helpers_and_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "list").write_text("3 1 2\n")
    (tmp_path / "bad").write_text("fast\n")
    assert sysfs.read_ints(tmp_path / "list") == (3, 1, 2)
    assert sysfs.read_optional_int(tmp_path / "bad") is None
    assert sysfs.read_optional(tmp_path / "missing") is None
    with pytest.raises(sysfs.SysfsFormatError, match="expected an integer"):
        sysfs.read_int(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match="missing"):
        sysfs.read_int(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="never-created"):
        sysfs.write_value(tmp_path / "never-created", 1)
    assert not (tmp_path / "never-created").exists()
    with pytest.raises(FileNotFoundError, match="not a directory"):
        sysfs.root_path(tmp_path / "nope")
    assert sysfs.parse_cpu_list("0-2,4 6") == (0, 1, 2, 4, 6)
    with pytest.raises(sysfs.SysfsFormatError):
        sysfs.parse_cpu_list("0-x")


@pytest.mark.parametrize("start,new", [((100, 200), (300, 300)), ((300, 400), (100, 100)), ((100, 400), (200, 300))])
def test_write_limits_never_passes_through_min_above_max(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         start: tuple[int, int], new: tuple[int, int]) -> None:
    lo, hi = tmp_path / "min", tmp_path / "max"
    lo.write_text(f"{start[0]}\n")
    hi.write_text(f"{start[1]}\n")
    real_write = sysfs.write_value

    def checked(path: Path, value: object) -> None:
        real_write(path, value)
        assert sysfs.read_int(lo) <= sysfs.read_int(hi), f"min > max after writing {value} to {path.name}"

    monkeypatch.setattr(sysfs, "write_value", checked)
    sysfs.write_limits(lo, hi, *new)
    assert (sysfs.read_int(lo), sysfs.read_int(hi)) == new
    with pytest.raises(ValueError, match="exceeds"):
        sysfs.write_limits(lo, hi, 5, 4)


def test_discover_jetson_policies(make_board) -> None:
    t = make_board("xavier-nx-jp4")
    pols = discover_policies(t.root)
    assert [p.index for p in pols] == [0, 2, 4]
    assert [p.cpus for p in pols] == [(0, 1), (2, 3), (4, 5)]
    assert pols[0].available_khz == t.cpu_khz and len(t.cpu_khz) == 25
    assert pols[0].uses_userspace
    s = pols[0].read()
    assert (s.cur_khz, s.governor, s.setspeed_khz) == (1420800, "schedutil", None)
    assert intel_pstate_mode(t.root) is None


def test_intel_pstate_pins_through_limits(make_board) -> None:
    t = make_board("laptop-intel-pstate")
    pols = discover_policies(t.root)
    assert len(pols) == 4 and intel_pstate_mode(t.root) == "active"
    p = pols[1]
    assert p.available_khz == () and not p.uses_userspace
    assert p.refusal(2_000_000) is None and "outside" in p.refusal(5_000_000)
    p.pin(2_000_000)
    base = "/sys/devices/system/cpu/cpufreq/policy1"
    assert t.read(f"{base}/scaling_min_freq") == t.read(f"{base}/scaling_max_freq") == "2000000"
    assert t.read(f"{base}/scaling_governor") == "powersave"  # untouched
    assert t.read(f"{base}/scaling_setspeed") == "<unsupported>"


def test_acpi_cpufreq_pins_with_userspace(make_board) -> None:
    t = make_board("laptop-acpi")
    p = discover_policies(t.root)[0]
    assert p.available_khz == (800000, 1400000, 1800000, 2200000, 2600000, 2601000)  # sorted ascending
    assert "not offered" in p.refusal(1_000_000)
    with pytest.raises(ValueError, match="not offered"):
        p.pin(1_000_000)
    t.write("/sys/devices/system/cpu/cpufreq/policy0/scaling_max_freq", 1400000)  # setspeed is clamped to limits
    p.pin(2_200_000)
    base = "/sys/devices/system/cpu/cpufreq/policy0"
    assert t.read(f"{base}/scaling_governor") == "userspace"
    assert t.read(f"{base}/scaling_setspeed") == "2200000"
    assert (t.read(f"{base}/scaling_min_freq"), t.read(f"{base}/scaling_max_freq")) == ("800000", "2601000")
    assert t.read("/sys/devices/system/cpu/cpufreq/policy1/scaling_governor") == "schedutil"


def test_policy_sample_throttling() -> None:
    assert PolicySample(1000, 1500, 1500, "schedutil", None).throttled()
    assert not PolicySample(1490, 1500, 1500, "schedutil", None).throttled()
    assert PolicySample(800, 100, 2000, "userspace", 1500).throttled()
    assert PolicySample(1200, 100, 2000, "performance", None).throttled()
    assert not PolicySample(1200, 100, 2000, "schedutil", None).throttled()  # governor decides freely


def test_cores_online_and_plan(make_board) -> None:
    t = make_board("xavier-nx-jp4")
    cores = CpuCores(t.root)
    assert cores.ids == (0, 1, 2, 3, 4, 5)
    assert not cores.can_offline(0) and cores.can_offline(1)
    with pytest.raises(ValueError, match="cannot be taken offline"):
        cores.set_online(0, False)
    assert cores.plan_online([0, 1], 1) == {0: True, 1: False}
    assert cores.plan_online([2, 3], 0) == {2: False, 3: False}
    with pytest.raises(ValueError, match="impossible"):
        cores.plan_online([0, 1], 0)
    with pytest.raises(ValueError, match="impossible"):
        cores.plan_online([2, 3], 3)
    cores.set_online(3, False)
    assert t.read("/sys/devices/system/cpu/cpu3/online") == "0"
    assert cores.online_count([2, 3]) == 1
    with pytest.raises(ValueError, match="not present"):
        cores.is_online(9)


def test_proc_stat_utilisation(make_board) -> None:
    t = make_board("laptop-acpi")
    before = read_cpu_times(t.root)
    t.proc_stat({0: (1000 + 75, 4000 + 25), 1: (2000 + 10, 8000 + 90)})
    after = read_cpu_times(t.root)
    assert utilisation(before, after, [0]) == pytest.approx(0.75)
    assert utilisation(before, after, [0, 1]) == pytest.approx((0.75 + 0.10) / 2)
    assert utilisation(before, before, [0]) != utilisation(before, before, [0])  # no elapsed time: nan


def test_affinity_round_trip() -> None:
    original = get_affinity()
    try:
        one = min(original)
        set_affinity([one])
        assert get_affinity() == {one}
        assert os.sched_getaffinity(0) == {one}
    finally:
        set_affinity(original)
    with pytest.raises(ValueError, match="at least one"):
        set_affinity([])
