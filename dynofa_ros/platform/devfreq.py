"""Jetson GPU devfreq (frequencies in Hz) and the read-only EMC (memory controller) clock.

GPU: ``available_frequencies``, ``min_freq``, ``max_freq``, ``cur_freq``, ``governor`` of the devfreq
node (``/sys/class/devfreq/*`` or the Jetson device paths); load from the parent device's ``load``
file (0..1000). Thor lists several GPU clocks (``gpu-gpc-0``, ``gpu-nvd-0``); the GPU domain is the
NVD clock, the one jetson-stats reports. Pinning writes ``min_freq`` and ``max_freq`` in the order
that never makes min > max; the governor is left alone. EMC: the clock rate and limits where the
kernel generation exposes them (``EMC_CLOCKS``) and the actmon activity (``EMC_ACTIVITY_PATHS``);
never written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from dynofa_ros.platform import sysfs

log = logging.getLogger(__name__)

DEVFREQ_CLASS = "/sys/class/devfreq"
GPU_DEVFREQ_PATHS = (  # Jetson locations, for kernels that do not list the GPU in the class
    "/sys/devices/gpu.0/devfreq/17000000.gv11b",  # Xavier, JetPack 4/5
    "/sys/devices/17000000.gv11b/devfreq/17000000.gv11b",
    "/sys/devices/platform/17000000.ga10b/devfreq/17000000.ga10b",  # Orin, JetPack 5
    "/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu",  # Orin, JetPack 6
    "/sys/devices/57000000.gpu/devfreq/57000000.gpu",  # Nano/TX1
    "/sys/devices/17000000.gp10b/devfreq/17000000.gp10b",  # TX2
)
GPU_NAME_MARKERS = ("gpu-nvd", "gv11b", "ga10b", "gp10b", "gm20b", "gpu")  # by preference (Thor: NVD over GPC)
THROTTLE_TOLERANCE = 0.05


@dataclass(frozen=True)
class EmcClock:
    """Where one kernel generation exposes the EMC clock (Hz): its rate file and candidate limit files."""

    rate: str
    min_rates: tuple[str, ...]
    max_rates: tuple[str, ...]


BPMP_EMC = "/sys/kernel/debug/bpmp/debug/clk/emc"
BWMGR_DEVFREQ = "/sys/class/devfreq/bwmgr"
EMC_CLOCKS = (  # the first whose rate reads is used
    EmcClock(f"{BPMP_EMC}/rate", (f"{BPMP_EMC}/min_rate",), (f"{BPMP_EMC}/max_rate",)),  # TX2, Xavier, Orin
    EmcClock(f"{BWMGR_DEVFREQ}/cur_freq", (f"{BWMGR_DEVFREQ}/min_freq",), (f"{BWMGR_DEVFREQ}/max_freq",)),  # Thor
    EmcClock("/sys/kernel/debug/clk/emc/clk_rate",  # Nano/TX1 (t210): common clock debugfs, bwmgr limits
             ("/sys/kernel/debug/clk/emc/clk_min_rate", "/sys/kernel/debug/tegra_bwmgr/emc_min_rate"),
             ("/sys/kernel/debug/clk/emc/clk_max_rate", "/sys/kernel/debug/tegra_bwmgr/emc_max_rate")),
)
EMC_ACTIVITY_PATHS = (  # average EMC activity in kHz of EMC clock; the first readable is used
    "/sys/kernel/actmon_avg_activity/mc_all",  # JetPack 4/5 (TX2, Xavier, Orin on JetPack 5)
    "/sys/kernel/debug/cactmon/mc_all",  # Nano/TX1: central actmon
    "/sys/kernel/debug/bpmp/debug/actmon/mc_all_avg_activity",  # Orin on JetPack 6: BPMP actmon
)


@dataclass(frozen=True)
class DevfreqSample:
    cur_hz: int
    min_hz: int
    max_hz: int
    governor: str
    load: float  # 0..1, nan when the device has no load file

    def throttled(self) -> bool:
        """Pinned (min == max) or performance, yet running clearly below that frequency."""
        want = self.max_hz if self.governor == "performance" or self.min_hz == self.max_hz else None
        return want is not None and self.cur_hz < want * (1.0 - THROTTLE_TOLERANCE)


@dataclass(frozen=True)
class DevfreqDevice:
    """A GPU devfreq node found by :func:`discover_gpu`."""

    name: str
    path: Path
    available_hz: tuple[int, ...]  # ascending

    def writable_files(self) -> tuple[Path, ...]:
        return (self.path / "min_freq", self.path / "max_freq")

    def _load_file(self) -> Path | None:
        for cand in (self.path / "device" / "load", self.path.parent.parent / "load"):
            if cand.is_file():
                return cand
        return None

    def read(self) -> DevfreqSample:
        load_file = self._load_file()
        raw_load = sysfs.read_optional_int(load_file) if load_file else None
        return DevfreqSample(
            cur_hz=sysfs.read_int(self.path / "cur_freq"),
            min_hz=sysfs.read_int(self.path / "min_freq"),
            max_hz=sysfs.read_int(self.path / "max_freq"),
            governor=sysfs.read_optional(self.path / "governor") or "",
            load=min(max(raw_load / 1000.0, 0.0), 1.0) if raw_load is not None else float("nan"),
        )

    def refusal(self, hz: int) -> str | None:
        """Why ``hz`` cannot be pinned, or None when it can."""
        if not self.available_hz:
            return f"{self.name} lists no available_frequencies"
        if hz not in self.available_hz:
            return (f"{hz} Hz is not offered by {self.name} "
                    f"({self.available_hz[0]}..{self.available_hz[-1]} Hz, {len(self.available_hz)} steps)")
        return None

    def pin(self, hz: int) -> None:
        """Fix the device at ``hz`` (min = max). ValueError for a refused value, OSError on write errors."""
        reason = self.refusal(hz)
        if reason:
            raise ValueError(reason)
        sysfs.write_limits(self.path / "min_freq", self.path / "max_freq", hz, hz)


def _is_devfreq_node(path: Path) -> bool:
    return all((path / f).is_file() for f in ("cur_freq", "min_freq", "max_freq"))


def _marker_rank(path: Path) -> int:
    """Index of the most preferred GPU_NAME_MARKERS entry in the node's name (len(markers) for none)."""
    name = path.name.lower()
    return next((i for i, m in enumerate(GPU_NAME_MARKERS) if m in name), len(GPU_NAME_MARKERS))


def discover_gpu(root: Path) -> DevfreqDevice | None:
    """The GPU devfreq node under ``root`` (names containing gv11b, ga10b, gpu, ...), or None.

    When several match, the one whose name holds the most preferred marker wins (Thor: gpu-nvd-0)."""
    candidates: list[Path] = []
    cls = sysfs.under(root, DEVFREQ_CLASS)
    if cls.is_dir():
        candidates.extend(sorted(cls.iterdir()))
    candidates.extend(sysfs.under(root, p) for p in GPU_DEVFREQ_PATHS)
    seen: set[Path] = set()
    found: list[Path] = []
    for cand in candidates:
        if _marker_rank(cand) == len(GPU_NAME_MARKERS) or not _is_devfreq_node(cand):
            continue
        real = cand.resolve()
        if real.is_relative_to(root) and real not in seen:
            seen.add(real)
            found.append(real)
    if not found:
        return None
    found.sort(key=_marker_rank)  # stable: class order among equals
    if len(found) > 1:
        log.info("several GPU devfreq nodes %s; using %s", [str(p) for p in found], found[0])
    path = found[0]
    avail = sysfs.read_optional(path / "available_frequencies")
    freqs = tuple(sorted(set(sysfs.read_ints(path / "available_frequencies")))) if avail else ()
    return DevfreqDevice(name=path.name, path=path, available_hz=freqs)


@dataclass(frozen=True)
class EmcSample:
    cur_hz: int
    min_hz: int  # 0 when the kernel exposes no limit
    max_hz: int  # 0 when the kernel exposes no limit
    utilisation: float  # 0..1 from actmon, nan when no activity file reads


def _first_readable(root: Path, system_paths: tuple[str, ...]) -> Path | None:
    """The first of ``system_paths`` under ``root`` that reads as an integer."""
    return next((p for p in (sysfs.under(root, s) for s in system_paths) if sysfs.read_optional_int(p) is not None),
                None)


class EmcReader:
    """The Jetson external memory controller clock (debugfs: root only; devfreq on Thor). Read-only."""

    def __init__(self, root: Path) -> None:
        clock = next((c for c in EMC_CLOCKS if sysfs.read_optional_int(sysfs.under(root, c.rate)) is not None), None)
        self.rate_file: Path | None = sysfs.under(root, clock.rate) if clock else None
        self._min = _first_readable(root, clock.min_rates) if clock else None
        self._max = _first_readable(root, clock.max_rates) if clock else None
        self._activity = _first_readable(root, EMC_ACTIVITY_PATHS)

    @property
    def available(self) -> bool:
        return self.rate_file is not None

    def read(self) -> EmcSample:
        """Current rate, limits and activity where the kernel has them. Raises RuntimeError if unavailable."""
        if self.rate_file is None:
            raise RuntimeError("no readable EMC rate file")
        rate = sysfs.read_int(self.rate_file)
        lo = sysfs.read_optional_int(self._min) if self._min else None
        hi = sysfs.read_optional_int(self._max) if self._max else None
        # actmon's mc_all is the average activity in kHz of EMC clock: load = mc_all / rate_kHz.
        act = sysfs.read_optional_int(self._activity) if self._activity else None
        util = min(max(act / (rate / 1000.0), 0.0), 1.0) if act is not None and rate > 0 else float("nan")
        return EmcSample(cur_hz=rate, min_hz=lo or 0, max_hz=hi or 0, utilisation=util)
