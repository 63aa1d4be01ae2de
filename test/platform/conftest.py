"""Fake sysfs/procfs trees of real boards, built in a temporary directory.

Layouts follow the kernel interfaces named in dynofa_ros/platform/*.py; values are plausible
readings of the boards (Xavier NX tables from ../shared/DESIGN.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

CARMEL_KHZ = (115200, 192000, 268800, 345600, 422400, 499200, 576000, 652800, 729600, 806400, 883200, 960000,
              1036800, 1113600, 1190400, 1267200, 1344000, 1420800, 1497600, 1574400, 1651200, 1728000, 1804800,
              1881600, 1907200)
GV11B_HZ = (114750000, 204000000, 306000000, 408000000, 510000000, 599250000, 701250000, 752250000, 803250000,
            854250000, 905250000, 956250000, 1007250000, 1058250000, 1109250000)
ORIN_CPU_KHZ = (115200, 192000, 268800, 345600, 422400, 499200, 576000, 652800, 729600, 806400, 883200, 960000,
                1036800, 1113600, 1190400, 1267200, 1344000, 1420800, 1497600, 1574400, 1651200, 1728000, 1804800,
                1881600, 1958400, 1984000)
GA10B_HZ = (306000000, 408000000, 510000000, 612000000, 714000000, 816000000, 918000000)
JETSON_GOVERNORS = "interactive conservative ondemand userspace powersave performance schedutil"


class FakeTree:
    """A directory standing for "/": system paths are written under it."""

    def __init__(self, root: Path, board: str, cpu_khz: tuple[int, ...] = (), gpu_hz: tuple[int, ...] = ()) -> None:
        self.root = root
        self.board = board
        self.cpu_khz = cpu_khz  # the CPU frequency table the builder used (ascending)
        self.gpu_hz = gpu_hz

    def path(self, system_path: str) -> Path:
        return self.root / system_path.lstrip("/")

    def write(self, system_path: str, value: object) -> None:
        p = self.path(system_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")

    def read(self, system_path: str) -> str:
        return self.path(system_path).read_text().strip()

    def link(self, system_path: str, target_system_path: str) -> None:
        """A relative symlink, as sysfs class and driver directories are."""
        p = self.path(system_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        self.path(target_system_path).mkdir(parents=True, exist_ok=True)
        p.symlink_to(os.path.relpath(self.path(target_system_path), p.parent))

    def snapshot(self) -> dict[str, str]:
        """Every regular file's content, to compare before/after."""
        return {str(p.relative_to(self.root)): p.read_text() for p in sorted(self.root.rglob("*"))
                if p.is_file() and not p.is_symlink()}

    # ------------------------------------------------------------------ building blocks
    def cpus(self, n: int, offline: Iterable[int] = ()) -> None:
        off = set(offline)
        for c in range(n):
            self.path(f"/sys/devices/system/cpu/cpu{c}").mkdir(parents=True, exist_ok=True)
            if c:  # cpu0 has no online file
                self.write(f"/sys/devices/system/cpu/cpu{c}/online", 0 if c in off else 1)
        self.proc_stat({c: (1000 * (c + 1), 4000 * (c + 1)) for c in range(n) if c not in off})

    def proc_stat(self, times: dict[int, tuple[int, int]]) -> None:
        """/proc/stat with per-cpu (busy, idle) jiffies (busy is split over user and system)."""
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for c, (busy, idle) in sorted(times.items()):
            lines.append(f"cpu{c} {busy // 2} 0 {busy - busy // 2} {idle} 0 0 0 0 0 0")
        lines.append("intr 0")
        self.write("/proc/stat", "\n".join(lines))

    def policy(self, idx: int, cpus: str, khz: tuple[int, ...] | None, governors: str, governor: str,
               driver: str, cpuinfo: tuple[int, int], cur: int, limits: tuple[int, int] | None = None,
               listed: tuple[int, ...] | None = None) -> None:
        base = f"/sys/devices/system/cpu/cpufreq/policy{idx}"
        lo, hi = limits or cpuinfo
        files = {"related_cpus": cpus, "affected_cpus": cpus, "scaling_min_freq": lo, "scaling_max_freq": hi,
                 "scaling_cur_freq": cur, "cpuinfo_min_freq": cpuinfo[0], "cpuinfo_max_freq": cpuinfo[1],
                 "scaling_governor": governor, "scaling_available_governors": governors,
                 "scaling_driver": driver, "scaling_setspeed": "<unsupported>"}
        if khz is not None:
            files["scaling_available_frequencies"] = " ".join(str(k) for k in (listed or khz))
        for name, value in files.items():
            self.write(f"{base}/{name}", value)

    def devfreq(self, path: str, hz: tuple[int, ...], governor: str = "nvhost_podgov") -> None:
        for name, value in {"available_frequencies": " ".join(map(str, hz)), "min_freq": hz[0],
                            "max_freq": hz[-1], "cur_freq": hz[-1], "governor": governor}.items():
            self.write(f"{path}/{name}", value)

    def zone(self, n: int, kind: str, milli_c: int, trips: Iterable[tuple[str, int]] = ()) -> None:
        base = f"/sys/class/thermal/thermal_zone{n}"
        self.write(f"{base}/type", kind)
        self.write(f"{base}/temp", milli_c)
        for m, (ttype, ttemp) in enumerate(trips):
            self.write(f"{base}/trip_point_{m}_type", ttype)
            self.write(f"{base}/trip_point_{m}_temp", ttemp)

    def ina_hwmon(self, device: str, hwmon: str, channels: dict[int, tuple[str, int, int]]) -> None:
        """INA3221 in the hwmon layout; channels: index -> (label, mV, mA)."""
        base = f"{device}/hwmon/{hwmon}"
        self.write(f"{base}/name", "ina3221")
        for k, (label, mv, ma) in channels.items():
            self.write(f"{base}/in{k}_label", label)
            self.write(f"{base}/in{k}_input", mv)
            self.write(f"{base}/curr{k}_input", ma)
        self.write(f"{base}/in7_label", "sum of shunt voltages")
        self.write(f"{base}/in7_input", 40)
        self.write(f"{base}/curr4_input", 9999)


def _xavier_common(t: FakeTree) -> None:
    t.cpus(6)
    for idx in (0, 2, 4):
        t.policy(idx, f"{idx} {idx + 1}", CARMEL_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194", (115200, 1907200),
                 1420800)
    t.devfreq("/sys/devices/gpu.0/devfreq/17000000.gv11b", GV11B_HZ)
    t.write("/sys/devices/gpu.0/load", 250)
    t.write("/sys/kernel/debug/bpmp/debug/clk/emc/rate", 1866000000)
    t.write("/sys/kernel/debug/bpmp/debug/clk/emc/min_rate", 204000000)
    t.write("/sys/kernel/debug/bpmp/debug/clk/emc/max_rate", 1866000000)
    t.write("/sys/kernel/actmon_avg_activity/mc_all", 466500)
    for n, (kind, temp) in enumerate([("BCPU-therm", 41500), ("MCPU-therm", 41500), ("GPU-therm", 39000),
                                      ("PLL-therm", 38000), ("Tboard_tegra", -256000), ("Tdiode_tegra", 40250),
                                      ("PMIC-Die", 100000), ("thermal-fan-est", 40400)]):
        trips = [("active", 51000), ("passive", 88000), ("critical", 96500)] if kind.endswith("-therm") else []
        t.zone(n, kind, temp, trips)


def xavier_nx_jp4(root: Path) -> FakeTree:
    """Xavier NX, JetPack 4: INA3221 through the iio driver, devfreq node listed in the class."""
    t = FakeTree(root, "xavier-nx-jp4", CARMEL_KHZ, GV11B_HZ)
    _xavier_common(t)
    t.link("/sys/class/devfreq/17000000.gv11b", "/sys/devices/gpu.0/devfreq/17000000.gv11b")
    iio = "/sys/bus/i2c/drivers/ina3221x/7-0040/iio:device0"
    for k, (name, mw) in enumerate([("VDD_IN", 4600), ("VDD_CPU_GPU_CV", 1200), ("VDD_SOC", 1350)]):
        t.write(f"{iio}/rail_name_{k}", name)
        t.write(f"{iio}/in_power{k}_input", mw)
    return t


def xavier_nx_jp5(root: Path) -> FakeTree:
    """Xavier NX, JetPack 5: INA3221 through hwmon, GPU found only at its device path."""
    t = FakeTree(root, "xavier-nx-jp5", CARMEL_KHZ, GV11B_HZ)
    _xavier_common(t)
    t.ina_hwmon("/sys/bus/i2c/drivers/ina3221/7-0040", "hwmon3",
                {1: ("VDD_IN", 5000, 920), 2: ("VDD_CPU_GPU_CV", 5000, 240), 3: ("VDD_SOC", 5000, 270)})
    return t


def orin_jp6(root: Path) -> FakeTree:
    """Orin NX, JetPack 6: ga10b devfreq under bus@0, hwmon INA3221 (class link too), a second INA with NC."""
    t = FakeTree(root, "orin-jp6", ORIN_CPU_KHZ, GA10B_HZ)
    t.cpus(8)
    for idx in (0, 4):
        t.policy(idx, f"{idx}-{idx + 3}", ORIN_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194",
                 (115200, 1984000), 729600)
    gpu = "/sys/devices/platform/bus@0/17000000.gpu"
    t.devfreq(f"{gpu}/devfreq/17000000.gpu", GA10B_HZ)
    t.write(f"{gpu}/load", 600)
    t.link(f"{gpu}/devfreq/17000000.gpu/device", gpu)
    t.link("/sys/class/devfreq/17000000.gpu", f"{gpu}/devfreq/17000000.gpu")
    t.devfreq("/sys/devices/platform/bus@0/15340000.vic/devfreq/15340000.vic", (115200000, 729600000))
    t.link("/sys/class/devfreq/15340000.vic", "/sys/devices/platform/bus@0/15340000.vic/devfreq/15340000.vic")
    dev = "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"
    t.ina_hwmon(dev, "hwmon1", {1: ("VDD_IN", 5040, 1500), 2: ("VDD_CPU_GPU_CV", 5040, 500),
                                3: ("VDD_SOC", 5040, 400)})
    t.link("/sys/bus/i2c/drivers/ina3221/1-0040", dev)
    t.link("/sys/class/hwmon/hwmon1", f"{dev}/hwmon/hwmon1")
    dev2 = "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0041"
    t.ina_hwmon(dev2, "hwmon2", {1: ("VDD_5V0_SYS", 5000, 100), 2: ("NC", 0, 0)})
    t.link("/sys/bus/i2c/drivers/ina3221/1-0041", dev2)
    for n, (kind, temp) in enumerate([("cpu-thermal", 45000), ("gpu-thermal", 43500), ("soc0-thermal", 44000),
                                      ("tj-thermal", 45500)]):
        t.zone(n, kind, temp, [("passive", 99000), ("critical", 105000)])
    return t


def laptop_intel_pstate(root: Path) -> FakeTree:
    """x86 laptop, intel_pstate active (HWP): no frequency table, no userspace governor; RAPL."""
    t = FakeTree(root, "laptop-intel-pstate")
    t.cpus(4)
    for c in range(4):
        t.policy(c, str(c), None, "performance powersave", "powersave", "intel_pstate", (400000, 4700000), 1800000)
    t.write("/sys/devices/system/cpu/intel_pstate/status", "active")
    for zone, name, energy in [("intel-rapl:0", "package-0", 262143000000), ("intel-rapl:0:0", "core", 10)]:
        t.write(f"/sys/class/powercap/{zone}/name", name)
        t.write(f"/sys/class/powercap/{zone}/energy_uj", energy)
        t.write(f"/sys/class/powercap/{zone}/max_energy_range_uj", 262143328850)
    t.zone(0, "acpitz", 45000, [("critical", 128000)])
    t.zone(1, "acpitz", 46000)
    t.zone(2, "x86_pkg_temp", 52000, [("passive", 50000)])
    return t


def laptop_acpi(root: Path) -> FakeTree:
    """x86 laptop with acpi-cpufreq: descending frequency table, userspace governor, a hwmon power meter."""
    table = (2601000, 2600000, 2200000, 1800000, 1400000, 800000)
    t = FakeTree(root, "laptop-acpi", tuple(sorted(table)))
    t.cpus(2)
    for c in range(2):
        t.policy(c, str(c), tuple(sorted(table)), "conservative ondemand userspace powersave performance schedutil",
                 "schedutil", "acpi-cpufreq", (800000, 2601000), 1400000, listed=table)
    t.write("/sys/class/hwmon/hwmon0/name", "power_meter")
    t.write("/sys/class/hwmon/hwmon0/power1_input", 12500000)
    t.zone(0, "x86_pkg_temp", 48000)
    return t


BOARDS: dict[str, Callable[[Path], FakeTree]] = {
    "xavier-nx-jp4": xavier_nx_jp4, "xavier-nx-jp5": xavier_nx_jp5, "orin-jp6": orin_jp6,
    "laptop-intel-pstate": laptop_intel_pstate, "laptop-acpi": laptop_acpi,
}


@pytest.fixture
def make_board(tmp_path: Path) -> Callable[[str], FakeTree]:
    """Build one of BOARDS in a fresh directory: ``make_board("xavier-nx-jp4")``."""
    def build(name: str) -> FakeTree:
        root = tmp_path / name
        root.mkdir()
        return BOARDS[name](root)
    return build


@pytest.fixture(params=sorted(BOARDS))
def any_board(request: pytest.FixtureRequest, make_board: Callable[[str], FakeTree]) -> FakeTree:
    return make_board(request.param)


class FakeNvml:
    """A stand-in for the pynvml module: two GPUs, getters only. Any setter access fails the test."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0
    nvmlClocksEventReasonGpuIdle = 0x1
    nvmlClocksEventReasonSwPowerCap = 0x4
    nvmlClocksEventReasonHwSlowdown = 0x8

    class NVMLError_NotSupported(Exception):  # noqa: N801 - pynvml's name
        pass

    class _Util:
        def __init__(self, gpu: int) -> None:
            self.gpu = gpu

    def __init__(self) -> None:
        self.energy_mj = [1_000_000, 5_000]
        self.power_mw = [250_000, 70_000]
        self.reasons = [0x1, 0x4]
        self.shutdown = False

    def __getattr__(self, name: str) -> object:
        if "Set" in name or "Reset" in name:
            raise AssertionError(f"NVML setter {name} must never be used")
        raise AttributeError(name)

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:  # noqa: N802
        return b"NVIDIA H100" if h == 0 else b"Tesla T4"

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802
        return self.power_mw[h]

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:  # noqa: N802
        if h == 1:
            raise self.NVMLError_NotSupported("not supported")
        return self.energy_mj[h]

    def nvmlDeviceGetClockInfo(self, h: int, kind: int) -> int:  # noqa: N802
        return 1755 if kind == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetMaxClockInfo(self, h: int, kind: int) -> int:  # noqa: N802
        return 1980

    def nvmlDeviceGetUtilizationRates(self, h: int) -> _Util:  # noqa: N802
        return self._Util(37)

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:  # noqa: N802
        return 41

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:  # noqa: N802
        return self.reasons[h]


@pytest.fixture
def fake_nvml() -> FakeNvml:
    return FakeNvml()
