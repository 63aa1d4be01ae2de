"""Fake sysfs/procfs trees of real boards, built in a temporary directory.

Layouts follow the kernel interfaces named in dynofa_ros/platform/*.py; values are plausible
readings of the boards (Xavier NX tables from ../shared/DESIGN.md). Where a path is not known for
certain, the builder's docstring says which part is assumed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from dynofa_ros.platform.sysfs import parse_cpu_list

CPU = "/sys/devices/system/cpu"
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
AGX_XAVIER_CPU_KHZ = CARMEL_KHZ[:-1] + (1958400, 2035200, 2112000, 2188800, 2265600)
GV11B_AGX_HZ = (114750000, 216750000, 318750000, 420750000, 522750000, 624750000, 675750000, 828750000, 905250000,
                1032750000, 1198500000, 1236750000, 1338750000, 1377000000)
AGX_ORIN_CPU_KHZ = ORIN_CPU_KHZ[:-1] + (2035200, 2112000, 2188800, 2201600)
GA10B_AGX_HZ = GA10B_HZ + (1020000000, 1122000000, 1224000000, 1300500000)
TX2_CPU_KHZ = (345600, 499200, 652800, 806400, 960000, 1113600, 1267200, 1420800, 1574400, 1728000, 1881600, 2035200)
GP10B_HZ = (114750000, 216750000, 318750000, 420750000, 522750000, 624750000, 726750000, 828750000, 930750000,
            1032750000, 1134750000, 1236750000, 1300500000)
T210_CPU_KHZ = (102000, 204000, 307200, 403200, 518400, 614400, 710400, 825600, 921600, 1036800, 1132800, 1224000,
                1326000, 1428000, 1479000)
GM20B_HZ = (76800000, 153600000, 230400000, 307200000, 384000000, 460800000, 537600000, 614400000, 691200000,
            768000000, 844800000, 921600000)
THOR_CPU_KHZ = (972000, 1188000, 1404000, 1620000, 1836000, 2052000, 2268000, 2484000, 2601000)  # assumed steps
THOR_GPC_HZ = (315000000, 630000000, 945000000, 1260000000, 1575000000)  # assumed steps, top from jetson_clocks
THOR_NVD_HZ = (338400000, 676800000, 1015200000, 1353600000, 1692000000)  # assumed steps, top from jetson_clocks
THOR_EMC_HZ = (665600000, 2133000000, 3199000000, 4266000000)  # assumed steps


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

    def controlled(self) -> dict[str, str]:
        """The attributes a run may change (scaling_setspeed is only meaningful under userspace)."""
        return {k: v for k, v in self.snapshot().items() if not k.endswith(("scaling_setspeed", "proc/stat"))}

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
               listed: tuple[int, ...] | None = None, per_cpu: bool = False) -> None:
        """``cpufreq/policy<idx>`` and a ``cpuN/cpufreq`` link to it per cpu (kernel 4.3+); ``per_cpu``: the
        older layout, the folder in the first cpu and links to it from the others (no policy folder)."""
        members = parse_cpu_list(cpus)
        base = f"{CPU}/cpu{members[0]}/cpufreq" if per_cpu else f"{CPU}/cpufreq/policy{idx}"
        lo, hi = limits or cpuinfo
        files = {"related_cpus": cpus, "affected_cpus": cpus, "scaling_min_freq": lo, "scaling_max_freq": hi,
                 "scaling_cur_freq": cur, "cpuinfo_min_freq": cpuinfo[0], "cpuinfo_max_freq": cpuinfo[1],
                 "scaling_governor": governor, "scaling_available_governors": governors,
                 "scaling_driver": driver, "scaling_setspeed": "<unsupported>"}
        if khz is not None:
            files["scaling_available_frequencies"] = " ".join(str(k) for k in (listed or khz))
        for name, value in files.items():
            self.write(f"{base}/{name}", value)
        for c in members:
            if f"{CPU}/cpu{c}/cpufreq" != base:
                self.link(f"{CPU}/cpu{c}/cpufreq", base)

    def devfreq(self, path: str, hz: tuple[int, ...], governor: str = "nvhost_podgov") -> None:
        for name, value in {"available_frequencies": " ".join(map(str, hz)), "min_freq": hz[0],
                            "max_freq": hz[-1], "cur_freq": hz[-1], "governor": governor}.items():
            self.write(f"{path}/{name}", value)

    def zone(self, n: int, kind: str, milli_c: int | str, trips: Iterable[tuple[str, int]] = ()) -> None:
        """Thermal zone ``n``; ``milli_c`` "" stands for a sensor whose reads fail (e.g. power-gated)."""
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

    def ina_hwmon_device(self, device: str, hwmon: str, channels: dict[int, tuple[str, int, int]]) -> None:
        """:meth:`ina_hwmon` at an i2c device path, reached through the driver and the hwmon class (JetPack 5+)."""
        self.ina_hwmon(device, hwmon, channels)
        self.link(f"/sys/bus/i2c/drivers/ina3221/{device.rsplit('/', 1)[1]}", device)
        self.link(f"/sys/class/hwmon/{hwmon}", f"{device}/hwmon/{hwmon}")

    def ina_iio(self, device: str, iio: str, channels: dict[int, tuple[str, int]]) -> None:
        """INA3221 in the JetPack 4 iio layout (ina3221x driver); channels: index -> (rail name, mW)."""
        for k, (name, mw) in channels.items():
            self.write(f"{device}/{iio}/rail_name_{k}", name)
            self.write(f"{device}/{iio}/in_power{k}_input", mw)

    def devfreq_device(self, device: str, node: str, hz: tuple[int, ...], load: int | None,
                    class_link: bool = True) -> None:
        """A devfreq node under its device, the device's ``load`` (0..1000) and the devfreq class link."""
        self.devfreq(f"{device}/devfreq/{node}", hz)
        if load is not None:
            self.write(f"{device}/load", load)
        if class_link:
            self.link(f"/sys/class/devfreq/{node}", f"{device}/devfreq/{node}")

    def bpmp_emc(self, rate: int, lo: int, hi: int) -> None:
        """The EMC clock in BPMP debugfs (TX2, Xavier, Orin)."""
        for name, value in {"rate": rate, "min_rate": lo, "max_rate": hi}.items():
            self.write(f"/sys/kernel/debug/bpmp/debug/clk/emc/{name}", value)

    def zones(self, entries: Iterable[tuple[str, int | str]], trips: Callable[[str], list[tuple[str, int]]]) -> None:
        """Thermal zones 0, 1, ... from (type, m°C); ``trips(type)`` gives each zone's trip points."""
        for n, (kind, milli_c) in enumerate(entries):
            self.zone(n, kind, milli_c, trips(kind))


def _therm_trips(kind: str) -> list[tuple[str, int]]:
    """JetPack 4/5 trip points: the -therm sensors have fan, throttle and shutdown trips."""
    return [("active", 51000), ("passive", 88000), ("critical", 96500)] if kind.endswith("-therm") else []


def _xavier_common(t: FakeTree) -> None:
    t.cpus(6)
    for idx in (0, 2, 4):
        t.policy(idx, f"{idx} {idx + 1}", CARMEL_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194", (115200, 1907200),
                 1420800)
    t.devfreq_device("/sys/devices/gpu.0", "17000000.gv11b", GV11B_HZ, 250, class_link=False)
    t.bpmp_emc(1866000000, 204000000, 1866000000)
    t.write("/sys/kernel/actmon_avg_activity/mc_all", 466500)
    t.zones([("BCPU-therm", 41500), ("MCPU-therm", 41500), ("GPU-therm", 39000), ("PLL-therm", 38000),
             ("Tboard_tegra", -256000), ("Tdiode_tegra", 40250), ("PMIC-Die", 100000), ("thermal-fan-est", 40400)],
            _therm_trips)


def xavier_nx_jp4(root: Path) -> FakeTree:
    """Xavier NX, JetPack 4: INA3221 through the iio driver, devfreq node listed in the class."""
    t = FakeTree(root, "xavier-nx-jp4", CARMEL_KHZ, GV11B_HZ)
    _xavier_common(t)
    t.link("/sys/class/devfreq/17000000.gv11b", "/sys/devices/gpu.0/devfreq/17000000.gv11b")
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/7-0040", "iio:device0",
              {0: ("VDD_IN", 4600), 1: ("VDD_CPU_GPU_CV", 1200), 2: ("VDD_SOC", 1350)})
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
    t.devfreq_device(gpu, "17000000.gpu", GA10B_HZ, 600)
    t.link(f"{gpu}/devfreq/17000000.gpu/device", gpu)
    t.devfreq_device("/sys/devices/platform/bus@0/15340000.vic", "15340000.vic", (115200000, 729600000), None)
    i2c = "/sys/devices/platform/bus@0/c240000.i2c/i2c-1"
    t.ina_hwmon_device(f"{i2c}/1-0040", "hwmon1", {1: ("VDD_IN", 5040, 1500), 2: ("VDD_CPU_GPU_CV", 5040, 500),
                                                   3: ("VDD_SOC", 5040, 400)})
    t.ina_hwmon(f"{i2c}/1-0041", "hwmon2", {1: ("VDD_5V0_SYS", 5000, 100), 2: ("NC", 0, 0)})
    t.link("/sys/bus/i2c/drivers/ina3221/1-0041", f"{i2c}/1-0041")
    t.zones([("cpu-thermal", 45000), ("gpu-thermal", 43500), ("soc0-thermal", 44000), ("tj-thermal", 45500)],
            lambda _: [("passive", 99000), ("critical", 105000)])
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


def tx2_jp4(root: Path) -> FakeTree:
    """Jetson TX2, JetPack 4 (t186, kernel 4.9): A57 cluster (cpus 0, 3-5) and Denver cluster (1-2), gp10b,
    BPMP EMC, two INA3221 on the module through the iio driver with VDD_IN among the rails."""
    t = FakeTree(root, "tx2-jp4", TX2_CPU_KHZ, GP10B_HZ)
    t.cpus(6)
    for idx, cpus in ((0, "0 3 4 5"), (1, "1 2")):
        t.policy(idx, cpus, TX2_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra186", (345600, 2035200), 1267200)
    t.devfreq_device("/sys/devices/17000000.gp10b", "17000000.gp10b", GP10B_HZ, 120)
    t.bpmp_emc(1866000000, 40800000, 1866000000)
    t.write("/sys/kernel/actmon_avg_activity/mc_all", 186600)  # 10 % of 1866 MHz
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/0-0040", "iio:device0",
              {0: ("VDD_SYS_GPU", 150), 1: ("VDD_SYS_SOC", 460), 2: ("VDD_4V0_WIFI", 40)})
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/0-0041", "iio:device1",
              {0: ("VDD_IN", 2100), 1: ("VDD_SYS_CPU", 230), 2: ("VDD_SYS_DDR", 310)})
    t.zones([("BCPU-therm", 36500), ("MCPU-therm", 36500), ("GPU-therm", 35000), ("PLL-therm", 34500),
             ("Tboard_tegra", 31000), ("Tdiode_tegra", 33750), ("PMIC-Die", 100000), ("thermal-fan-est", 35900)],
            _therm_trips)
    return t


def _t210(t: FakeTree, per_cpu: bool) -> None:
    """Nano/TX1 (t210, JetPack 4): one A57 cluster, gm20b, EMC in the common clock debugfs with bwmgr limits,
    activity from the central actmon (cactmon)."""
    t.cpus(4)
    t.policy(0, "0 1 2 3", T210_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra", (102000, 1479000), 921600,
             per_cpu=per_cpu)
    t.devfreq_device("/sys/devices/57000000.gpu", "57000000.gpu", GM20B_HZ, 300)
    t.write("/sys/kernel/debug/clk/emc/clk_rate", 1600000000)
    t.write("/sys/kernel/debug/tegra_bwmgr/emc_min_rate", 204000000)
    t.write("/sys/kernel/debug/tegra_bwmgr/emc_max_rate", 1600000000)
    t.write("/sys/kernel/debug/cactmon/mc_all", 480000)  # 30 % of 1600 MHz
    t.zones([("AO-therm", 36500), ("CPU-therm", 38000), ("GPU-therm", 36000), ("PLL-therm", 35500),
             ("PMIC-Die", 100000), ("thermal-fan-est", 37000)], _therm_trips)


def nano_jp4(root: Path) -> FakeTree:
    """Jetson Nano, JetPack 4: t210 and one INA3221 (iio) whose input rail is POM_5V_IN."""
    t = FakeTree(root, "nano-jp4", T210_CPU_KHZ, GM20B_HZ)
    _t210(t, per_cpu=False)
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/6-0040", "iio:device0",
              {0: ("POM_5V_IN", 2900), 1: ("POM_5V_GPU", 210), 2: ("POM_5V_CPU", 620)})
    return t


def tx1_per_cpu(root: Path) -> FakeTree:
    """Jetson TX1 with the cpufreq layout of kernels before 4.3 (L4T 24): no ``cpufreq/policyN``, the
    policy folder in cpu0 and ``cpu1-3/cpufreq`` links to it. The other paths are assumed as on JetPack 4."""
    t = FakeTree(root, "tx1-per-cpu", T210_CPU_KHZ, GM20B_HZ)
    _t210(t, per_cpu=True)
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/1-0040", "iio:device0",
              {0: ("VDD_IN", 3400), 1: ("VDD_GPU", 180), 2: ("VDD_CPU", 560)})
    return t


def _agx_xavier(t: FakeTree) -> None:
    """AGX Xavier: four Carmel clusters, gv11b at gpu.0, BPMP EMC with actmon, no input rail."""
    t.cpus(8)
    for idx in (0, 2, 4, 6):
        t.policy(idx, f"{idx} {idx + 1}", AGX_XAVIER_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194",
                 (115200, 2265600), 1190400)
    t.devfreq_device("/sys/devices/gpu.0", "17000000.gv11b", GV11B_AGX_HZ, 420)
    t.bpmp_emc(2133000000, 204000000, 2133000000)
    t.write("/sys/kernel/actmon_avg_activity/mc_all", 426600)  # 20 % of 2133 MHz
    t.zones([("AO-therm", 35500), ("CPU-therm", 38500), ("GPU-therm", 37000), ("PLL-therm", 36000),
             ("AUX-therm", 36500), ("Tboard_tegra", 33000), ("Tdiode_tegra", 36250), ("PMIC-Die", 100000),
             ("thermal-fan-est", 37400)], _therm_trips)


def agx_xavier_jp4(root: Path) -> FakeTree:
    """AGX Xavier, JetPack 4: GPU, CPU, SOC on INA3221 1-0040 and CV, VDDRQ, SYS5V on 1-0041 (iio, mW)."""
    t = FakeTree(root, "agx-xavier-jp4", AGX_XAVIER_CPU_KHZ, GV11B_AGX_HZ)
    _agx_xavier(t)
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/1-0040", "iio:device0", {0: ("GPU", 310), 1: ("CPU", 620),
                                                                      2: ("SOC", 1240)})
    t.ina_iio("/sys/bus/i2c/drivers/ina3221x/1-0041", "iio:device1", {0: ("CV", 0), 1: ("VDDRQ", 460),
                                                                      2: ("SYS5V", 1850)})
    return t


def agx_xavier_jp5(root: Path) -> FakeTree:
    """AGX Xavier, JetPack 5: the same rails through the hwmon ina3221 driver (mV, mA)."""
    t = FakeTree(root, "agx-xavier-jp5", AGX_XAVIER_CPU_KHZ, GV11B_AGX_HZ)
    _agx_xavier(t)
    i2c = "/sys/devices/platform/c240000.i2c/i2c-1"  # assumed device path; read through the driver links
    t.ina_hwmon_device(f"{i2c}/1-0040", "hwmon3", {1: ("GPU", 5000, 62), 2: ("CPU", 5000, 124),
                                                   3: ("SOC", 5000, 248)})
    t.ina_hwmon_device(f"{i2c}/1-0041", "hwmon4", {1: ("CV", 5000, 0), 2: ("VDDRQ", 5000, 92),
                                                   3: ("SYS5V", 5000, 370)})
    return t


def _agx_orin(t: FakeTree, gpu: str, node: str, i2c: str) -> None:
    """AGX Orin: three A78AE clusters, ga10b, BPMP EMC; VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0 on 1-0040 and
    VDDQ_VDD2_1V8AO (fed by VIN_SYS_5V0) between two NC channels on 1-0041; no input rail."""
    t.cpus(12)
    for idx in (0, 4, 8):
        t.policy(idx, f"{idx}-{idx + 3}", AGX_ORIN_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194",
                 (115200, 2201600), 1113600)
    t.devfreq_device(gpu, node, GA10B_AGX_HZ, 180)
    t.bpmp_emc(3199000000, 204000000, 3199000000)
    t.ina_hwmon_device(f"{i2c}/1-0040", "hwmon3", {1: ("VDD_GPU_SOC", 840, 5000), 2: ("VDD_CPU_CV", 800, 2500),
                                                   3: ("VIN_SYS_5V0", 4960, 1000)})
    t.ina_hwmon_device(f"{i2c}/1-0041", "hwmon4", {1: ("NC", 0, 0), 2: ("VDDQ_VDD2_1V8AO", 1800, 500),
                                                   3: ("NC", 0, 0)})


def agx_orin_jp5(root: Path) -> FakeTree:
    """AGX Orin, JetPack 5: GPU under /sys/devices/platform, actmon_avg_activity, -therm zones (the CV
    zones read -256 °C while the DLA/PVA are off)."""
    t = FakeTree(root, "agx-orin-jp5", AGX_ORIN_CPU_KHZ, GA10B_AGX_HZ)
    _agx_orin(t, "/sys/devices/platform/17000000.ga10b", "17000000.ga10b", "/sys/devices/platform/c240000.i2c/i2c-1")
    t.write("/sys/kernel/actmon_avg_activity/mc_all", 159950)  # 5 % of 3199 MHz
    t.zones([("CPU-therm", 47500), ("GPU-therm", 45000), ("CV0-therm", -256000), ("CV1-therm", -256000),
             ("CV2-therm", -256000), ("SOC0-therm", 45500), ("SOC1-therm", 44500), ("SOC2-therm", 44000),
             ("tj-therm", 47500)], lambda _: [("passive", 99000), ("critical", 105000)])
    return t


def agx_orin_jp6(root: Path) -> FakeTree:
    """AGX Orin, JetPack 6: GPU under bus@0, EMC activity only from the BPMP actmon, -thermal zones."""
    t = FakeTree(root, "agx-orin-jp6", AGX_ORIN_CPU_KHZ, GA10B_AGX_HZ)
    _agx_orin(t, "/sys/devices/platform/bus@0/17000000.gpu", "17000000.gpu",
              "/sys/devices/platform/bus@0/c240000.i2c/i2c-1")
    t.write("/sys/kernel/debug/bpmp/debug/actmon/mc_all_avg_activity", 319900)  # 10 % of 3199 MHz
    t.zones([("cpu-thermal", 47500), ("gpu-thermal", 45000), ("cv0-thermal", -256000), ("cv1-thermal", -256000),
             ("cv2-thermal", -256000), ("soc0-thermal", 45500), ("soc1-thermal", 44500), ("soc2-thermal", 44000),
             ("tj-thermal", 47500)], lambda _: [("passive", 99000), ("critical", 105000)])
    return t


def thor_jp7(root: Path) -> FakeTree:
    """Jetson AGX Thor, JetPack 7: 14 cores, GPU clocks gpu-gpc-0 and gpu-nvd-0 and the EMC (bwmgr) in the
    devfreq class, VDD_GPU, VDD_CPU_SOC_MSS, VIN_SYS_5V0 on one INA3221, gpu-thermal unreadable while the GPU is
    gated. Assumed: one cpufreq policy per core, the frequency steps, the device folders behind the class links,
    the INA3221 bus, and no GPU load file."""
    t = FakeTree(root, "thor-jp7", THOR_CPU_KHZ, THOR_NVD_HZ)
    t.cpus(14)
    for c in range(14):
        t.policy(c, str(c), THOR_CPU_KHZ, JETSON_GOVERNORS, "schedutil", "tegra194", (972000, 2601000), 972000)
    for node, hz in (("gpu-gpc-0", THOR_GPC_HZ), ("gpu-nvd-0", THOR_NVD_HZ)):
        t.devfreq_device("/sys/devices/platform/gpu", node, hz, None)
    t.devfreq_device("/sys/devices/platform/8188050000.vic", "8188050000.vic", (115200000, 1036800000), None)
    t.devfreq_device("/sys/devices/platform/bwmgr", "bwmgr", THOR_EMC_HZ, None)
    t.ina_hwmon_device("/sys/devices/platform/c240000.i2c/i2c-2/2-0040", "hwmon1",
                       {1: ("VDD_GPU", 5000, 400), 2: ("VDD_CPU_SOC_MSS", 5000, 1300), 3: ("VIN_SYS_5V0", 5000, 1300)})
    t.zones([("tj-thermal", 55100), ("soc012-thermal", 55100), ("cpu-thermal", 53700), ("soc345-thermal", 53700),
             ("gpu-thermal", "")], lambda _: [("critical", 114500)])
    return t


BOARDS: dict[str, Callable[[Path], FakeTree]] = {
    "xavier-nx-jp4": xavier_nx_jp4, "xavier-nx-jp5": xavier_nx_jp5, "orin-jp6": orin_jp6,
    "laptop-intel-pstate": laptop_intel_pstate, "laptop-acpi": laptop_acpi,
    "tx2-jp4": tx2_jp4, "nano-jp4": nano_jp4, "tx1-per-cpu": tx1_per_cpu,
    "agx-xavier-jp4": agx_xavier_jp4, "agx-xavier-jp5": agx_xavier_jp5,
    "agx-orin-jp5": agx_orin_jp5, "agx-orin-jp6": agx_orin_jp6, "thor-jp7": thor_jp7,
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
