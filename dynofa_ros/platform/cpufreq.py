"""Linux cpufreq policies: discovery, reading and pinning a frequency (values in kHz).

Reads ``/sys/devices/system/cpu/cpufreq/policyN/``; kernels older than 4.3 (Jetson TX1 on L4T 24) have
no policy folders, only ``/sys/devices/system/cpu/cpuN/cpufreq/`` (a symlink to the first cpu's folder
when cpus share a policy), and those are read instead. Pinning uses the ``userspace`` governor and
``scaling_setspeed`` where the driver offers it (acpi-cpufreq, Jetson), and otherwise writes
``scaling_min_freq`` = ``scaling_max_freq`` (intel_pstate in active mode has no userspace governor).
Writes need root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.cores import CPU_DIR

CPUFREQ_DIR = f"{CPU_DIR}/cpufreq"
INTEL_PSTATE_STATUS = "/sys/devices/system/cpu/intel_pstate/status"
THROTTLE_TOLERANCE = 0.05  # cur below the requested frequency by more than this fraction = throttled


@dataclass(frozen=True)
class PolicySample:
    """One reading of a policy (kHz)."""

    cur_khz: int
    min_khz: int
    max_khz: int
    governor: str
    setspeed_khz: int | None  # only under the userspace governor

    def requested_khz(self) -> int | None:
        """The frequency the governor asks for when it is fixed (performance, userspace, min == max)."""
        if self.governor == "userspace" and self.setspeed_khz is not None:
            return self.setspeed_khz
        if self.governor == "performance":
            return self.max_khz
        if self.min_khz == self.max_khz:
            return self.min_khz
        return None

    def throttled(self) -> bool:
        """True when the policy runs clearly below what its governor asks for."""
        want = self.requested_khz()
        return want is not None and self.cur_khz < want * (1.0 - THROTTLE_TOLERANCE)


@dataclass(frozen=True)
class CpufreqPolicy:
    """One cpufreq policy found by :func:`discover_policies`."""

    index: int
    path: Path
    cpus: tuple[int, ...]  # related_cpus (online or not)
    available_khz: tuple[int, ...]  # ascending; empty when the driver lists none (intel_pstate)
    cpuinfo_min_khz: int
    cpuinfo_max_khz: int
    available_governors: tuple[str, ...]
    driver: str

    @property
    def uses_userspace(self) -> bool:
        """Pin with the userspace governor + scaling_setspeed (else by min = max limits)."""
        return "userspace" in self.available_governors

    def writable_files(self) -> tuple[Path, ...]:
        """The attribute files :meth:`pin` may write (and state saving records)."""
        names = ["scaling_governor", "scaling_min_freq", "scaling_max_freq"]
        if self.uses_userspace and (self.path / "scaling_setspeed").is_file():
            names.append("scaling_setspeed")
        return tuple(self.path / n for n in names)

    def read(self) -> PolicySample:
        """Current frequency, limits and governor. Raises OSError for an inactive (offline) policy."""
        return PolicySample(
            cur_khz=sysfs.read_int(self.path / "scaling_cur_freq"),
            min_khz=sysfs.read_int(self.path / "scaling_min_freq"),
            max_khz=sysfs.read_int(self.path / "scaling_max_freq"),
            governor=sysfs.read_text(self.path / "scaling_governor"),
            setspeed_khz=sysfs.read_optional_int(self.path / "scaling_setspeed"),
        )

    def refusal(self, khz: int) -> str | None:
        """Why ``khz`` cannot be pinned, or None when it can."""
        if self.available_khz:
            if khz not in self.available_khz:
                return (f"{khz} kHz is not offered by policy{self.index} "
                        f"({self.available_khz[0]}..{self.available_khz[-1]} kHz, {len(self.available_khz)} steps)")
        elif not self.cpuinfo_min_khz <= khz <= self.cpuinfo_max_khz:
            return f"{khz} kHz is outside policy{self.index}'s [{self.cpuinfo_min_khz}, {self.cpuinfo_max_khz}] kHz"
        return None

    def pin(self, khz: int) -> None:
        """Fix the policy at ``khz``. Raises ValueError for a refused value, OSError on write errors."""
        reason = self.refusal(khz)
        if reason:
            raise ValueError(reason)
        if self.uses_userspace:
            if sysfs.read_text(self.path / "scaling_governor") != "userspace":
                sysfs.write_value(self.path / "scaling_governor", "userspace")
            cur = self.read()
            if not cur.min_khz <= khz <= cur.max_khz:  # setspeed is clamped to the limits
                sysfs.write_limits(self.path / "scaling_min_freq", self.path / "scaling_max_freq",
                                   self.cpuinfo_min_khz, self.cpuinfo_max_khz)
            sysfs.write_value(self.path / "scaling_setspeed", khz)
        else:
            sysfs.write_limits(self.path / "scaling_min_freq", self.path / "scaling_max_freq", khz, khz)


def intel_pstate_mode(root: Path) -> str | None:
    """intel_pstate's status ("active", "passive", "off"), or None without intel_pstate."""
    return sysfs.read_optional(sysfs.under(root, INTEL_PSTATE_STATUS))


def _policy_dirs(root: Path) -> list[tuple[int, Path]]:
    """(N, folder) of every ``cpufreq/policyN`` folder."""
    base = sysfs.under(root, CPUFREQ_DIR)
    return [(int(m.group(1)), e) for e in (base.iterdir() if base.is_dir() else ())
            if (m := re.fullmatch(r"policy(\d+)", e.name))]


def _per_cpu_dirs(root: Path) -> list[tuple[int, Path]]:
    """(lowest cpu, folder) of every distinct ``cpuN/cpufreq`` folder (cpus of one policy share one)."""
    first: dict[Path, int] = {}
    for entry in sysfs.under(root, CPU_DIR).glob("cpu*/cpufreq"):
        m = re.fullmatch(r"cpu(\d+)", entry.parent.name)
        real = entry.resolve()
        if m and real.is_relative_to(root):
            cpu = int(m.group(1))
            first[real] = min(first.get(real, cpu), cpu)
    return [(cpu, path) for path, cpu in first.items()]


def discover_policies(root: Path) -> list[CpufreqPolicy]:
    """All cpufreq policies under ``root``, ordered by number (empty without cpufreq). A policy found
    only through per-cpu folders is numbered by its lowest cpu, as the kernel numbers policy folders."""
    found = []
    for index, entry in _policy_dirs(root) or _per_cpu_dirs(root):
        if not (entry / "scaling_cur_freq").exists():
            continue
        cpus_text = sysfs.read_optional(entry / "related_cpus") or sysfs.read_optional(entry / "affected_cpus")
        avail = sysfs.read_optional(entry / "scaling_available_frequencies")
        found.append(CpufreqPolicy(
            index=index,
            path=entry,
            cpus=sysfs.parse_cpu_list(cpus_text) if cpus_text else (index,),
            available_khz=tuple(sorted(set(sysfs.read_ints(entry / "scaling_available_frequencies")))) if avail
            else (),
            cpuinfo_min_khz=sysfs.read_int(entry / "cpuinfo_min_freq"),
            cpuinfo_max_khz=sysfs.read_int(entry / "cpuinfo_max_freq"),
            available_governors=tuple((sysfs.read_optional(entry / "scaling_available_governors") or "").split()),
            driver=sysfs.read_optional(entry / "scaling_driver") or "",
        ))
    return sorted(found, key=lambda p: p.index)
