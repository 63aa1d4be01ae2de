"""The real board: cpufreq, CPU cores, GPU devfreq, EMC, power rails, RAPL, thermal zones and NVML.

``LinuxPlatform`` discovers what the kernel offers under ``sysfs_root`` (default "/"), reads
snapshots, applies per-domain settings, and restores the original settings on close, on signals
(when asked) and after a crash (at the next start). Without write permission it keeps monitoring:
one warning, then every apply is refused with the reason "monitoring-only".
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.base import Platform
from dynofa_ros.platform.cores import CpuCores, read_cpu_times, utilisation
from dynofa_ros.platform.cpufreq import CpufreqPolicy, discover_policies, intel_pstate_mode
from dynofa_ros.platform.devfreq import EmcReader, discover_gpu
from dynofa_ros.platform.nvml import NvmlReader, NvmlSample
from dynofa_ros.platform.power import (
    EnergyIntegrator,
    board_power_source,
    discover_rails,
    discover_rapl,
    rapl_board_zones,
)
from dynofa_ros.platform.state import (
    SavedState,
    default_state_file,
    install_signal_handlers,
    limits_step,
    load_state,
    process_start_time,
    restore_steps,
    save_state,
    write_step,
)
from dynofa_ros.platform.thermal import discover_zones, read_temperatures
from dynofa_ros.platform.types import ApplyResult, DomainInfo, DomainState, DvfsSetting, PlatformState

log = logging.getLogger(__name__)

MONITORING_ONLY = "monitoring-only"


class LinuxPlatform(Platform):
    """A real Linux board (Jetson, laptop, server) seen through sysfs, procfs, RAPL and NVML."""

    simulated = False

    def __init__(self, sysfs_root: str | Path = "/", state_file: str | Path | None = None,
                 allow_write: bool = True, use_nvml: bool = True, nvml_module: ModuleType | None = None) -> None:
        self.root = sysfs.root_path(sysfs_root)
        self.state_file = Path(state_file) if state_file is not None else default_state_file()
        self._lock = threading.RLock()
        self._policies: dict[str, CpufreqPolicy] = {f"cpu{p.index}": p for p in discover_policies(self.root)}
        self._cores = CpuCores(self.root)
        self._gpu = discover_gpu(self.root)
        self._emc = EmcReader(self.root)
        self._rails = discover_rails(self.root)
        self._board = board_power_source(self._rails)
        self._zones = discover_zones(self.root)
        self._rapl = discover_rapl(self.root)
        self._nvml = NvmlReader(nvml_module) if use_nvml else None
        self._allowed = self._writable_paths()
        self._domains = self._discover_domains(allow_write)
        self._monitoring_reason: str | None = None if allow_write else "allow_write=False"
        self._saved: SavedState | None = None
        self._saved_domains: list[str] = []  # in capture order
        self._closed = False
        self._restored_steps: list[dict] = []  # the steps of the last restore (to undo a late write)
        self._uninstall_signals: list[Callable[[], None]] = []
        pstate = intel_pstate_mode(self.root)
        if pstate:
            log.info("intel_pstate is %s: CPU frequencies are pinned through scaling_min/max_freq", pstate)
        # baselines so that the first read() already has utilisation, RAPL power and energy deltas
        self._cpu_times = self._read_cpu_times()
        self._ina_energy = EnergyIntegrator()
        self._nvml_energy: dict[int, EnergyIntegrator] = {}
        self._nvml_energy0: dict[int, float] = {}
        self._board_sample(time.monotonic(), self._read_power(), self._read_nvml())
        if allow_write:
            self._recover_leftover()

    # ---------------------------------------------------------------- discovery
    def _writable_paths(self) -> set[str]:
        files: list[Path] = [f for p in self._policies.values() for f in p.writable_files()]
        files += [f for c in self._cpu_ids() if (f := self._cores.online_file(c)) is not None]
        if self._gpu is not None:
            files += list(self._gpu.writable_files())
        return {sysfs.relative(self.root, f) for f in files}

    def _cpu_ids(self) -> list[int]:
        return sorted({c for p in self._policies.values() for c in p.cpus if c in self._cores.ids})

    def _discover_domains(self, writable: bool) -> list[DomainInfo]:
        doms = [DomainInfo(name=name, kind="cpu", frequencies_hz=tuple(k * 1000 for k in p.available_khz),
                           cores=p.cpus, writable=writable) for name, p in self._policies.items()]
        if self._gpu is not None:
            doms.append(DomainInfo(name="gpu", kind="gpu", frequencies_hz=self._gpu.available_hz, writable=writable))
        if self._emc.available:
            doms.append(DomainInfo(name="emc", kind="emc", frequencies_hz=()))
        if self._nvml is not None:
            doms += [DomainInfo(name=f"nvml{i}", kind="gpu", frequencies_hz=()) for i in range(len(self._nvml.names))]
        return doms

    def domains(self) -> list[DomainInfo]:
        if self.monitoring_only:
            return [dataclasses.replace(d, writable=False) for d in self._domains]
        return list(self._domains)

    @property
    def monitoring_only(self) -> bool:
        return self._monitoring_reason is not None

    def _enter_monitoring(self, reason: str) -> None:
        if self._monitoring_reason is None:
            self._monitoring_reason = reason
            log.warning("platform switched to monitoring-only: %s. Frequencies and cores will not be changed "
                        "(run as root, or fix the cause, to allow DVFS control).", reason)

    # ---------------------------------------------------------------- reading
    def _read_cpu_times(self) -> dict[int, tuple[int, int]]:
        try:
            return read_cpu_times(self.root)
        except (OSError, ValueError) as exc:
            log.debug("no CPU utilisation: %s", exc)
            return {}

    def _read_power(self) -> dict[str, float]:
        """Power per rail (W); also advances the RAPL counters."""
        power: dict[str, float] = {}
        for rail in self._rails:
            try:
                power[rail.name] = rail.read_w()
            except (OSError, ValueError) as exc:
                log.debug("rail %s unreadable: %s", rail.name, exc)
        now = time.monotonic()
        for zone in self._rapl:
            try:
                zone.update(now)
            except (OSError, ValueError) as exc:
                log.debug("RAPL %s unreadable: %s", zone.name, exc)
                continue
            if zone.power_w == zone.power_w:  # not nan
                power[f"rapl:{zone.name}"] = zone.power_w
        return power

    def _read_nvml(self) -> list[NvmlSample]:
        return self._nvml.read() if self._nvml is not None else []

    def _board_sample(self, now: float, power: dict[str, float], gpus: list[NvmlSample]) -> tuple[float, float, str]:
        """(cumulative board energy in J since start, board power in W, their source). On Jetson the INA3221
        board power (VDD_IN, else the sum of rails) integrated; otherwise RAPL + NVML; nan and "" if none."""
        nan = float("nan")
        if self._board is not None:
            watts = self._board.watts(power)
            if watts is None:
                return nan, nan, self._board.label
            return self._ina_energy.add(now, watts), watts, self._board.label
        energy: list[float] = []
        watts_parts: list[float] = []
        names: list[str] = []
        for z in rapl_board_zones(self._rapl):
            energy.append(z.total_uj * 1e-6)
            watts_parts.append(z.power_w)
            names.append(f"rapl:{z.name}")
        for g in gpus:
            if g.energy_j is None and g.power_w is None:
                continue
            if g.energy_j is not None:
                energy.append(g.energy_j - self._nvml_energy0.setdefault(g.index, g.energy_j))
            else:
                energy.append(self._nvml_energy.setdefault(g.index, EnergyIntegrator()).add(now, g.power_w))
            watts_parts.append(g.power_w if g.power_w is not None else nan)
            names.append(f"nvml:gpu{g.index}")
        if not names:
            return nan, nan, ""
        return sum(energy), sum(watts_parts), "+".join(names)

    def read(self) -> PlatformState:
        with self._lock:
            stamp = time.time()
            times = self._read_cpu_times()
            doms: dict[str, DomainState] = {}
            throttled: dict[str, bool] = {}
            for name, pol in self._policies.items():
                online = self._cores.online_count(c for c in pol.cpus if c in self._cores.ids)
                util = utilisation(self._cpu_times, times, pol.cpus)
                try:
                    s = pol.read()
                except OSError:  # an inactive policy (every core of the cluster offline)
                    doms[name] = DomainState(name, "cpu", 0, 0, 0, tuple(k * 1000 for k in pol.available_khz),
                                             online_cores=online)
                    continue
                doms[name] = DomainState(name, "cpu", s.cur_khz * 1000, s.min_khz * 1000, s.max_khz * 1000,
                                         tuple(k * 1000 for k in pol.available_khz), util, online, s.governor)
                throttled[name] = s.throttled()
            self._cpu_times = times
            try:
                if self._gpu is not None:
                    g = self._gpu.read()
                    doms["gpu"] = DomainState("gpu", "gpu", g.cur_hz, g.min_hz, g.max_hz, self._gpu.available_hz,
                                              g.load, governor=g.governor)
                    throttled["gpu"] = g.throttled()
                if self._emc.available:
                    e = self._emc.read()
                    doms["emc"] = DomainState("emc", "emc", e.cur_hz, e.min_hz, e.max_hz, utilisation=e.utilisation)
            except (OSError, ValueError) as exc:  # a node that vanished or answers garbage: leave it out
                log.debug("devfreq/EMC read failed: %s", exc)
            power = self._read_power()
            gpus = self._read_nvml()
            temps, tripped = read_temperatures(self._zones)
            for g in gpus:
                name = f"nvml{g.index}"
                doms[name] = DomainState(name, "gpu", g.sm_clock_hz or 0, 0, g.max_sm_clock_hz or 0,
                                         utilisation=g.utilisation)
                throttled[name] = g.throttled
                if g.power_w is not None:
                    power[f"nvml:gpu{g.index}"] = g.power_w
                if g.temperature_c is not None:
                    temps[f"nvml:gpu{g.index}"] = g.temperature_c
            throttled.update(tripped)
            energy, board_w, source = self._board_sample(time.monotonic(), power, gpus)
            return PlatformState(stamp_s=stamp, simulated=False, domains=doms, power_w=power,
                                 temperatures_c=temps, throttled=throttled, energy_j=energy,
                                 board_power_w=board_w, power_source=source)

    # ---------------------------------------------------------------- writing
    def apply(self, settings: list[DvfsSetting]) -> ApplyResult:
        result = ApplyResult()
        with self._lock:
            for setting in settings:
                reason = self._apply_one(setting)
                if reason is None:
                    result.applied.append(setting)
                else:
                    result.refused.append((setting, reason))
        return result

    def _apply_one(self, s: DvfsSetting) -> str | None:
        info = next((d for d in self._domains if d.name == s.domain), None)
        if info is None:
            return f"unknown domain {s.domain!r} (known: {[d.name for d in self._domains]})"
        if self._closed:
            return "platform closed"
        if self.monitoring_only:
            return MONITORING_ONLY
        if not info.writable:
            return f"domain {s.domain!r} is read-only"
        plan, reason = self._plan(s)
        if reason:
            return reason
        try:
            self._ensure_saved(s.domain)
        except OSError as exc:
            self._enter_monitoring(f"cannot save the original settings to {self.state_file}: {exc}")
            return f"{MONITORING_ONLY}: {self._monitoring_reason}"
        try:
            for cpu, online in sorted(plan.items(), key=lambda kv: not kv[1]):  # bring cores up before down
                if not self._guarded_write(self._cores.set_online, cpu, online):
                    return "platform closed"
            if s.freq_hz is not None:
                self._ensure_saved(s.domain)  # a cluster just brought online is captured now
                if s.domain == "gpu" and self._gpu is not None:
                    done = self._guarded_write(self._gpu.pin, s.freq_hz)
                else:
                    done = self._guarded_write(self._policies[s.domain].pin, s.freq_hz // 1000)
                if not done:
                    return "platform closed"
        except PermissionError as exc:
            self._enter_monitoring(f"permission denied ({exc})")
            if self._saved is not None and self._current_steps() == self._saved.steps:
                self._forget_saved()  # the kernel refused every write: nothing to restore
            return f"{MONITORING_ONLY}: {self._monitoring_reason}"
        except (OSError, ValueError) as exc:
            return f"write failed: {exc}"
        return None

    def _guarded_write(self, write: Callable[..., None], *args: object) -> bool:
        """One write, unless the platform is closed. A signal handler may restore (and close) while this
        thread is inside ``apply`` holding the lock: a write that landed after that restore is undone."""
        if self._closed:
            return False
        write(*args)
        if self._closed:
            self._restore_again()
            return False
        return True

    def _restore_again(self) -> None:
        try:
            problems = restore_steps(self.root, self._restored_steps, self._allowed)
        except PermissionError as exc:
            log.error("cannot undo a write made while restoring (%s)", exc)
            return
        for p in problems:
            log.warning("restore: %s", p)

    def _plan(self, s: DvfsSetting) -> tuple[dict[int, bool], str | None]:
        """Core on/off plan for ``s`` and a refusal reason (None when ``s`` can be applied)."""
        plan: dict[int, bool] = {}
        if s.domain == "gpu":
            if s.online_cores is not None:
                return plan, "online_cores applies to cpu domains only"
            return plan, self._gpu.refusal(s.freq_hz) if self._gpu is not None and s.freq_hz is not None else None
        pol = self._policies[s.domain]
        cluster = [c for c in pol.cpus if c in self._cores.ids]
        if s.online_cores is not None:
            try:
                plan = self._cores.plan_online(cluster, s.online_cores)
            except ValueError as exc:
                return plan, str(exc)
        if s.freq_hz is not None:
            online_after = s.online_cores if s.online_cores is not None else self._cores.online_count(cluster)
            if online_after == 0:
                return plan, f"{s.domain} has no online core: its frequency cannot be set"
            if s.freq_hz % 1000:
                return plan, f"{s.freq_hz} Hz is not a whole number of kHz (cpufreq works in kHz)"
            return plan, pol.refusal(s.freq_hz // 1000)
        return plan, None

    # ---------------------------------------------------------------- crash-safe state
    def _capture(self, domain: str) -> list[dict]:
        if domain == "gpu" and self._gpu is not None:
            g = self._gpu.read()
            mn, mx = self._gpu.writable_files()
            return [limits_step(sysfs.relative(self.root, mn), sysfs.relative(self.root, mx), g.min_hz, g.max_hz)]
        pol = self._policies[domain]
        try:
            s = pol.read()
        except OSError:
            return []  # inactive now; its steps are captured when it is first written while active

        def rel(name: str) -> str:
            return sysfs.relative(self.root, pol.path / name)

        steps = [write_step(rel("scaling_governor"), s.governor),
                 limits_step(rel("scaling_min_freq"), rel("scaling_max_freq"), s.min_khz, s.max_khz)]
        if s.governor == "userspace" and s.setspeed_khz is not None:
            steps.append(write_step(rel("scaling_setspeed"), str(s.setspeed_khz)))
        return steps

    def _online_steps(self) -> list[dict]:
        return [write_step(sysfs.relative(self.root, f), sysfs.read_text(f))
                for c in self._cpu_ids() if (f := self._cores.online_file(c)) is not None]

    def _current_steps(self) -> list[dict]:
        """What :meth:`_ensure_saved` would record now for the domains saved so far."""
        return self._online_steps() + [st for d in self._saved_domains for st in self._capture(d)]

    def _ensure_saved(self, domain: str) -> None:
        """Record the original state of ``domain`` (and of every core's online flag) before its first write."""
        if domain in self._saved_domains or self._closed:
            return
        domain_steps = self._capture(domain)
        steps = (self._saved.steps if self._saved is not None else self._online_steps()) + domain_steps
        saved = SavedState(pid=os.getpid(), sysfs_root=str(self.root), steps=steps,
                           pid_start=process_start_time(os.getpid()))
        save_state(self.state_file, saved)
        if self._saved is None:
            atexit.register(self.close)
        self._saved = saved
        if domain_steps:
            self._saved_domains.append(domain)

    def _forget_saved(self) -> None:
        self.state_file.unlink(missing_ok=True)
        self._saved = None
        self._saved_domains.clear()
        atexit.unregister(self.close)

    def _recover_leftover(self) -> None:
        try:
            saved = load_state(self.state_file)
        except (OSError, ValueError) as exc:
            self._enter_monitoring(f"unreadable state file ({exc}); check the board's settings, then delete it")
            return
        if saved is None:
            return
        if saved.sysfs_root != str(self.root):
            self._enter_monitoring(f"state file {self.state_file} belongs to root {saved.sysfs_root!r}")
            return
        if saved.owner_alive():
            self._enter_monitoring(f"process {saved.pid} controls this board (state file {self.state_file})")
            return
        log.warning("restoring DVFS settings left by process %d, which died without restoring them (%s)",
                    saved.pid, self.state_file)
        try:
            problems = restore_steps(self.root, saved.steps, self._allowed)
        except PermissionError as exc:
            self._enter_monitoring(f"cannot restore the settings left in {self.state_file}: {exc}")
            return
        for p in problems:
            log.warning("restore: %s", p)
        self.state_file.unlink(missing_ok=True)

    def restore(self) -> None:
        """Put back every setting this object changed and delete the state file (idempotent). Closes the
        platform for writes: an ``apply`` interrupted by the signal handler that called this stops writing."""
        with self._lock:
            self._closed = True
            if self._saved is None:
                return
            self._restored_steps = self._saved.steps
            try:
                problems = restore_steps(self.root, self._saved.steps, self._allowed)
            except PermissionError as exc:
                log.error("cannot restore the original DVFS settings (%s); they stay in %s", exc, self.state_file)
                return
            for p in problems:
                log.warning("restore: %s", p)
            self._forget_saved()

    def install_signal_handlers(self) -> None:
        """Restore the original settings on SIGINT/SIGTERM, then run the previous handlers (main thread only)."""
        self._uninstall_signals.append(install_signal_handlers(self.restore))

    def close(self) -> None:
        """Restore, remove signal handlers, release NVML; later applies are refused."""
        with self._lock:
            self.restore()
            while self._uninstall_signals:
                self._uninstall_signals.pop()()
            if self._nvml is not None:
                self._nvml.close()
            atexit.unregister(self.close)
