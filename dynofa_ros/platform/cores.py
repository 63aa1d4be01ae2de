"""CPU cores: online state (``/sys/devices/system/cpu/cpuN/online``) and process affinity.

A core without an ``online`` file (cpu0 on most boards, Jetson included) cannot go offline.
Bringing cores on/offline needs root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from dynofa_ros.platform import sysfs

CPU_DIR = "/sys/devices/system/cpu"
PROC_STAT = "/proc/stat"


class CpuCores:
    """The CPU cores present under ``root``."""

    def __init__(self, root: Path) -> None:
        base = sysfs.under(root, CPU_DIR)
        self.ids: tuple[int, ...] = tuple(sorted(
            int(m.group(1)) for e in (base.iterdir() if base.is_dir() else ())
            if (m := re.fullmatch(r"cpu(\d+)", e.name)) and e.is_dir()
        ))
        self._base = base

    def online_file(self, cpu: int) -> Path | None:
        """The cpu's ``online`` file, or None when the cpu cannot be taken offline."""
        path = self._base / f"cpu{cpu}" / "online"
        return path if path.is_file() else None

    def can_offline(self, cpu: int) -> bool:
        return self.online_file(cpu) is not None

    def is_online(self, cpu: int) -> bool:
        """True for an online cpu (always for one without an ``online`` file)."""
        if cpu not in self.ids:
            raise ValueError(f"cpu{cpu} is not present (present: {list(self.ids)})")
        path = self.online_file(cpu)
        return path is None or sysfs.read_int(path) == 1

    def online_count(self, cpus: Iterable[int]) -> int:
        return sum(self.is_online(c) for c in cpus)

    def set_online(self, cpu: int, online: bool) -> None:
        """Bring ``cpu`` online or offline; ValueError for a cpu that cannot go offline."""
        path = self.online_file(cpu)
        if path is None:
            if online:
                return
            raise ValueError(f"cpu{cpu} cannot be taken offline (no online file)")
        if self.is_online(cpu) != online:
            sysfs.write_value(path, 1 if online else 0)

    def plan_online(self, cluster: Sequence[int], count: int) -> dict[int, bool]:
        """Which cores of ``cluster`` to keep online so that ``count`` are: the fixed ones, then lowest ids.

        Raises ValueError when ``count`` is impossible for this cluster.
        """
        fixed = [c for c in cluster if not self.can_offline(c)]
        if not len(fixed) <= count <= len(cluster):
            raise ValueError(f"{count} online cores is impossible for cluster {list(cluster)} "
                             f"(allowed {len(fixed)}..{len(cluster)}; cpus {fixed} cannot go offline)")
        keep = set(fixed)
        for c in sorted(cluster):
            if len(keep) >= count:
                break
            keep.add(c)
        return {c: c in keep for c in cluster}


def set_affinity(cpus: Iterable[int], pid: int = 0) -> None:
    """Restrict process ``pid`` (0 = this one) to ``cpus``; ValueError for an empty set."""
    wanted = set(cpus)
    if not wanted:
        raise ValueError("an affinity needs at least one cpu")
    os.sched_setaffinity(pid, wanted)


def get_affinity(pid: int = 0) -> set[int]:
    """The cpus process ``pid`` (0 = this one) may run on."""
    return set(os.sched_getaffinity(pid))


def read_cpu_times(root: Path) -> dict[int, tuple[int, int]]:
    """Per online cpu, (idle, total) jiffies from ``/proc/stat`` under ``root`` (idle includes iowait)."""
    times: dict[int, tuple[int, int]] = {}
    for line in sysfs.read_text(sysfs.under(root, PROC_STAT)).splitlines():
        parts = line.split()
        if not parts or not re.fullmatch(r"cpu\d+", parts[0]):
            continue
        try:
            vals = [int(v) for v in parts[1:9]]  # user nice system idle iowait irq softirq steal
        except ValueError:
            raise sysfs.SysfsFormatError(f"{PROC_STAT}: bad line {line!r}") from None
        vals += [0] * (8 - len(vals))
        times[int(parts[0][3:])] = (vals[3] + vals[4], sum(vals))
    return times


def utilisation(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
                cpus: Iterable[int]) -> float:
    """Mean busy fraction of ``cpus`` between two :func:`read_cpu_times` samples (nan if no data)."""
    busy = []
    for c in cpus:
        if c in before and c in after:
            d_idle, d_total = after[c][0] - before[c][0], after[c][1] - before[c][1]
            if d_total > 0:
                busy.append(min(max(1.0 - d_idle / d_total, 0.0), 1.0))
    return sum(busy) / len(busy) if busy else float("nan")
