"""Jetson GPU devfreq (frequencies in Hz) and the read-only EMC (memory controller) clock.

GPU: ``available_frequencies``, ``min_freq``, ``max_freq``, ``cur_freq``, ``governor`` of the devfreq
node (``/sys/class/devfreq/*`` or the Jetson device paths); load from the parent device's ``load``
file (0..1000). Pinning writes ``min_freq`` and ``max_freq`` in the order that never makes
min > max; the governor is left alone. EMC: the BPMP debugfs clock rate and actmon activity;
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
GPU_NAME_MARKERS = ("gv11b", "ga10b", "gp10b", "gm20b", "gpu")
EMC_RATE_PATHS = ("/sys/kernel/debug/bpmp/debug/clk/emc/rate", "/sys/kernel/debug/clk/emc/clk_rate")
EMC_ACTIVITY = "/sys/kernel/actmon_avg_activity/mc_all"
THROTTLE_TOLERANCE = 0.05


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


def discover_gpu(root: Path) -> DevfreqDevice | None:
    """The GPU devfreq node under ``root`` (names containing gv11b, ga10b, gpu, ...), or None."""
    candidates: list[Path] = []
    cls = sysfs.under(root, DEVFREQ_CLASS)
    if cls.is_dir():
        candidates.extend(sorted(cls.iterdir()))
    candidates.extend(sysfs.under(root, p) for p in GPU_DEVFREQ_PATHS)
    seen: set[Path] = set()
    found: list[Path] = []
    for cand in candidates:
        if not any(m in cand.name.lower() for m in GPU_NAME_MARKERS) or not _is_devfreq_node(cand):
            continue
        real = cand.resolve()
        if real.is_relative_to(root) and real not in seen:
            seen.add(real)
            found.append(real)
    if not found:
        return None
    if len(found) > 1:
        log.info("several GPU devfreq nodes %s; using %s", [str(p) for p in found], found[0])
    path = found[0]
    avail = sysfs.read_optional(path / "available_frequencies")
    freqs = tuple(sorted(set(sysfs.read_ints(path / "available_frequencies")))) if avail else ()
    return DevfreqDevice(name=path.name, path=path, available_hz=freqs)


@dataclass(frozen=True)
class EmcSample:
    cur_hz: int
    min_hz: int
    max_hz: int
    utilisation: float  # 0..1 from actmon, nan when unreadable


class EmcReader:
    """The Jetson external memory controller clock (debugfs, root only). Read-only."""

    def __init__(self, root: Path) -> None:
        self.rate_file: Path | None = next(
            (p for p in (sysfs.under(root, r) for r in EMC_RATE_PATHS) if sysfs.read_optional_int(p) is not None),
            None)
        self._activity = sysfs.under(root, EMC_ACTIVITY)

    @property
    def available(self) -> bool:
        return self.rate_file is not None

    def read(self) -> EmcSample:
        """Current rate, limits (when debugfs has them) and activity. Raises RuntimeError if unavailable."""
        if self.rate_file is None:
            raise RuntimeError("no readable EMC rate file")
        rate = sysfs.read_int(self.rate_file)
        lo = sysfs.read_optional_int(self.rate_file.parent / "min_rate")
        hi = sysfs.read_optional_int(self.rate_file.parent / "max_rate")
        # actmon's mc_all is the average activity in kHz of EMC clock: load = mc_all / rate_kHz.
        act = sysfs.read_optional_int(self._activity)
        util = min(max(act / (rate / 1000.0), 0.0), 1.0) if act is not None and rate > 0 else float("nan")
        return EmcSample(cur_hz=rate, min_hz=lo if lo is not None else rate, max_hz=hi if hi is not None else rate,
                         utilisation=util)
