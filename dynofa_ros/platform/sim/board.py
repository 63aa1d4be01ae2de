"""Simulated Jetson Xavier NX implementing the :class:`Platform` interface.

An event-driven processor-sharing simulation: frames (jobs) of several apps and a background load
share DVFS domains; between events (a frame ends, a thermal poll, the requested time) every rate is
constant, so latency, utilisation, energy and temperatures are integrated exactly. Time is simulated
(:class:`SimClock`, the harness advances it) or wall time (:class:`RealTimeClock`, the board catches up
on every call). See docs/simulated_board.md.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dynofa_ros.platform.base import Platform
from dynofa_ros.platform.sim.clock import RealTimeClock, SimClock
from dynofa_ros.platform.sim.config import BoardConfig, DomainConfig, ModeConfig
from dynofa_ros.platform.sim.latency import DnnWork, frame_time
from dynofa_ros.platform.sim.power import RAILS, PowerModel
from dynofa_ros.platform.sim.thermal import ThermalModel
from dynofa_ros.platform.types import ApplyResult, DomainInfo, DomainState, DvfsSetting, PlatformState

ALL_CPUS = "cpu"  # job placement over every online CPU cluster
GOVERNOR_LABEL = "simulated"
_HISTORY_S = 10.0
_EPS = 1e-12


@dataclass(frozen=True)
class FrameResult:
    """One finished frame. ``energy_j`` is the dynamic energy of the domains it ran on, split by occupancy."""

    app_id: str
    job_id: int
    domain: str
    latency_s: float
    start_s: float
    end_s: float
    energy_j: float


@dataclass
class _Job:
    app_id: str
    domain: str
    work: DnnWork
    cores: int | None
    start_s: float
    remaining: float = 1.0  # fraction of the frame still to run
    energy_j: float = 0.0


class SimulatedBoard(Platform):
    """A deterministic Xavier NX model: DVFS, nvpmodel modes, rails, thermal throttling, shared domains."""

    simulated = True

    def __init__(self, config: BoardConfig, mode: str | None = None, ambient_c: float | None = None,
                 seed: int = 0, clock: SimClock | RealTimeClock | None = None, window_s: float = 0.1,
                 noise_sigma: float | None = None) -> None:
        self.config = config
        self.power_model = PowerModel(config)
        self.thermal = ThermalModel(config, config.thermal.ambient_c if ambient_c is None else ambient_c)
        self.clock = clock or SimClock()
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self.noise_sigma = config.noise_sigma if noise_sigma is None else noise_sigma
        if self.noise_sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
        self._rng = np.random.default_rng(seed)
        self._names = [d.name for d in config.domains]
        self._t = self.clock.now()
        self._next_poll = self._t + config.thermal.poll_s
        self._load = dict.fromkeys(self._names, 0.0)
        self._jobs: dict[int, _Job] = {}
        self._next_id = 0
        self._finished: list[FrameResult] = []
        self._keys = [f"busy:{d}" for d in self._names] + list(RAILS)
        self._cum = np.zeros(len(self._keys))
        self._hist_t = [self._t]
        self._hist_v = [self._cum.copy()]
        self.mode = self._mode_config(mode or config.default_mode)
        self._online = self._mode_online(self.mode)
        self._requested = {d: self._mode_cap(d) for d in self._names}

    @classmethod
    def from_config(cls, path: str | Path | None = None, mode: str | None = None, ambient_c: float | None = None,
                    seed: int = 0, clock: SimClock | RealTimeClock | None = None, window_s: float = 0.1,
                    noise_sigma: float | None = None) -> SimulatedBoard:
        """Board from a YAML description (``None``: the shipped Xavier NX), in ``mode`` (default: the YAML's)."""
        return cls(BoardConfig.load(path), mode, ambient_c, seed, clock, window_s, noise_sigma)

    # ----------------------------------------------------------------- Platform interface
    def domains(self) -> list[DomainInfo]:
        """cpu0/cpu2/cpu4 clusters and the GPU; frequency tables capped by the active mode."""
        return [DomainInfo(d.name, d.kind, tuple(f for f in d.frequencies_hz if f <= self._mode_cap(d.name)),
                           d.cores, writable=True) for d in self.config.domains]

    def read(self) -> PlatformState:
        """Frequencies, utilisation and rail power averaged over the last ``window_s``, temperatures, energy."""
        self._sync()
        util, _, rails = self._instant()
        window = min(self.window_s, self._t - self._hist_t[0])
        if window > _EPS:
            past = self._cum - self._cum_at(self._t - window)
            util = {d: float(past[i]) / window for i, d in enumerate(self._names)}
            rails = {r: float(past[len(self._names) + i]) / window for i, r in enumerate(RAILS)}
        domains = {}
        for d in self.config.domains:
            domains[d.name] = DomainState(
                d.name, d.kind, self.effective_hz(d.name), d.frequencies_hz[0], self._cap_hz(d.name),
                tuple(f for f in d.frequencies_hz if f <= self._mode_cap(d.name)), min(1.0, util[d.name]),
                self._online.get(d.name, 0), GOVERNOR_LABEL)
        throttled = {z.name: self.thermal.throttled(z.name) for z in self.config.thermal.zones}
        throttled.update({d.name: self.thermal.throttled(d.zone) for d in self.config.domains})
        return PlatformState(self._t, True, domains, rails, dict(self.thermal.zone_c), throttled,
                             float(self._cum[self._keys.index("VDD_IN")]), rails["VDD_IN"], "VDD_IN")

    def apply(self, settings: list[DvfsSetting]) -> ApplyResult:
        """Set frequencies / online cores. A frequency must be in the domain's table and at or below the
        active mode's cap (no snapping: anything else is refused with the reason); online cores of a
        cluster range from 0 (1 for the cluster holding cpu0) to what the mode brings online."""
        self._sync()
        result = ApplyResult()
        for s in settings:
            reason = self._check(s)
            if reason:
                result.refused.append((s, reason))
                continue
            if s.freq_hz is not None:
                self._requested[s.domain] = s.freq_hz
            if s.online_cores is not None:
                self._online[s.domain] = s.online_cores
            result.applied.append(s)
        return result

    # ----------------------------------------------------------------- modes, loads
    def set_mode(self, name: str) -> None:
        """Switch nvpmodel mode: new caps (requested frequencies above them drop to the cap), online cores."""
        mode = self._mode_config(name)
        self._sync()
        online = self._mode_online(mode)
        stranded = [j.domain for j in self._jobs.values() if j.domain in online and online[j.domain] == 0]
        if stranded:
            raise ValueError(f"mode {name} takes clusters {sorted(set(stranded))} offline while frames run on them")
        self.mode = mode
        self._online = online
        for d in self.config.domains:
            self._requested[d.name] = min(self._requested[d.name], self._mode_cap(d.name))

    def set_load(self, domain: str, fraction: float) -> None:
        """Competing background load on a domain, as a fraction of its capacity (online cores or the GPU)."""
        self._domain(domain)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"load fraction must be in [0, 1], got {fraction}")
        self._sync()
        self._load[domain] = fraction

    def clear_load(self, domain: str) -> None:
        """No background load on ``domain`` (``set_load(domain, 0.0)``)."""
        self.set_load(domain, 0.0)

    # ----------------------------------------------------------------- frames and time
    @property
    def now(self) -> float:
        """Current simulated time, s."""
        self._sync()
        return self._t

    def submit(self, app_id: str, domain: str, work: DnnWork, cores: int | None = None) -> int:
        """Start one frame of ``work`` now on ``domain`` (a cluster, ``"gpu"``, or ``"cpu"`` = all online
        clusters); ``cores`` is the thread count (CPU; default all online cores, clamped to them).
        Returns a job id; the frame's :class:`FrameResult` comes out of ``advance_to`` when it ends."""
        kind = "cpu" if domain == ALL_CPUS else self._domain(domain).kind
        if work.kind != kind:
            raise ValueError(f"work for {work.kind} submitted to {kind} domain {domain!r}")
        if cores is not None and (kind == "gpu" or cores < 1):
            raise ValueError(f"cores must be None on the GPU and >= 1 on a CPU, got {cores}")
        self._sync()
        if not self._placement(domain, cores):
            raise ValueError(f"domain {domain!r} has no online cores in mode {self.mode.name}")
        if self.noise_sigma > 0:
            k = float(self._rng.lognormal(-self.noise_sigma ** 2 / 2, self.noise_sigma))
            work = replace(work, cycles=work.cycles * k, overhead_s=work.overhead_s * k)
        job_id, self._next_id = self._next_id, self._next_id + 1
        self._jobs[job_id] = _Job(app_id, domain, work, cores, self._t)
        return job_id

    def advance_to(self, t: float) -> list[FrameResult]:
        """Run the simulation to time ``t``; frames finished since the last call, in end order."""
        self._require_sim("advance_to")
        if t < self._t - _EPS:
            raise ValueError(f"cannot go back in time: now {self._t}, asked {t}")
        self._advance(t)
        done, self._finished = self._finished, []
        return done

    def idle(self, dt: float) -> list[FrameResult]:
        """``advance_to(now + dt)``."""
        return self.advance_to(self._t + dt)

    def run_frame(self, app_id: str, domain: str, work: DnnWork, cores: int | None = None) -> FrameResult:
        """Submit a frame and advance until it ends; other frames that end meanwhile wait for ``advance_to``."""
        self._require_sim("run_frame")
        job_id = self.submit(app_id, domain, work, cores)
        while True:
            self._advance(math.inf, stop_job=job_id)
            for i, r in enumerate(self._finished):
                if r.job_id == job_id:
                    return self._finished.pop(i)

    def is_running(self, app_id: str) -> bool:
        """Whether a frame of ``app_id`` is in flight."""
        self._sync()
        return any(j.app_id == app_id for j in self._jobs.values())

    def utilisation(self, domain: str, window_s: float) -> float:
        """Busy fraction of ``domain`` over the last ``window_s`` (for governors)."""
        i = self._names.index(self._domain(domain).name)
        self._sync()
        window = min(window_s, self._t - self._hist_t[0])
        if window <= _EPS:
            return self._instant()[0][domain]
        return min(1.0, float(self._cum[i] - self._cum_at(self._t - window)[i]) / window)

    def effective_hz(self, domain: str) -> int:
        """Running frequency: the requested one under the thermal cap."""
        return min(self._requested[domain], self._cap_hz(domain))

    # ----------------------------------------------------------------- models for predictive control
    def predict_latency(self, work: DnnWork, domain: str, freq_hz: int | Mapping[str, int] | None = None,
                        cores: int | None = None, share: float = 1.0) -> float:
        """Model latency (s) of ``work`` alone on ``domain`` at ``freq_hz`` (None: current effective
        frequencies; an int applies to every cluster of ``"cpu"``), given ``share`` of the domain."""
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        placement = self._placement(domain, cores)
        if not placement:
            raise ValueError(f"domain {domain!r} has no online cores in mode {self.mode.name}")
        freqs = freq_hz if isinstance(freq_hz, Mapping) else dict.fromkeys(placement, freq_hz)
        return frame_time(work, [(freqs.get(d) or self.effective_hz(d), n, share) for d, n in placement.items()])

    def predict_power(self, utilisation: Mapping[str, float],
                      freqs_hz: Mapping[str, int] | None = None) -> dict[str, float]:
        """Rails (W) with the given per-domain utilisation (missing: 0) at ``freqs_hz`` (missing: current)."""
        freqs = freqs_hz or {}
        util = {d: utilisation.get(d, 0.0) for d in self._names}
        dp = {d: self.power_model.domain_power(d, freqs.get(d, self.effective_hz(d)), util[d], self._cores(d))
              for d in self._names}
        return self.power_model.rails(dp, util, self.mode.emc_max_hz)

    # ----------------------------------------------------------------- internals
    def _mode_config(self, name: str) -> ModeConfig:
        if name not in self.config.modes:
            raise ValueError(f"unknown mode {name!r}; known: {list(self.config.modes)}")
        return self.config.modes[name]

    def _domain(self, name: str) -> DomainConfig:
        try:
            return self.config.domain(name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    def _require_sim(self, what: str) -> None:
        if self.clock.realtime:
            raise RuntimeError(f"{what} drives simulated time; with a RealTimeClock the board follows wall time")

    def _sync(self) -> None:
        if self.clock.realtime:
            self._advance(self.clock.now())

    def _mode_online(self, mode: ModeConfig) -> dict[str, int]:
        left, online = mode.online_cores, {}
        for d in self.config.domains:
            if d.kind == "cpu":
                online[d.name] = min(len(d.cores), left)
                left -= online[d.name]
        return online

    def _mode_cap(self, domain: str) -> int:
        return self.mode.cpu_max_hz if self._domain(domain).kind == "cpu" else self.mode.gpu_max_hz

    def _cap_hz(self, domain: str) -> int:
        return self.thermal.cap_hz(self.config.domain(domain), self._mode_cap(domain))

    def _cores(self, domain: str) -> int:
        """Capacity in threads: online cores of a cluster, 1 for the GPU."""
        return self._online.get(domain, 1)

    def _check(self, s: DvfsSetting) -> str:
        if s.domain not in self._names:
            return f"unknown domain {s.domain!r}; known: {self._names}"
        d = self.config.domain(s.domain)
        if s.freq_hz is not None:
            if s.freq_hz not in d.frequencies_hz:
                near = min(d.frequencies_hz, key=lambda f: abs(f - s.freq_hz))
                return f"{s.freq_hz} Hz is not in {d.name}'s table (nearest {near} Hz)"
            if s.freq_hz > self._mode_cap(d.name):
                return f"{s.freq_hz} Hz is above the {self.mode.name} cap of {self._mode_cap(d.name)} Hz"
        if s.online_cores is not None:
            if d.kind != "cpu":
                return f"{d.name} has no cores to take on/offline"
            allowed = self._mode_online(self.mode)[d.name]
            low = 1 if 0 in d.cores else 0
            if not low <= s.online_cores <= allowed:
                return f"{d.name} online cores must be {low}..{allowed} in {self.mode.name}, got {s.online_cores}"
            if s.online_cores == 0 and any(j.domain == d.name for j in self._jobs.values()):
                return f"frames are running on {d.name}: cannot take it offline"
        return ""

    def _placement(self, domain: str, cores: int | None) -> dict[str, int]:
        """Threads per domain for a frame (only domains with online cores)."""
        if domain != ALL_CPUS:
            if self._domain(domain).kind == "gpu":
                return {domain: 1}
            n = self._online[domain] if cores is None else min(cores, self._online[domain])
            return {domain: n} if n > 0 else {}
        left = sum(self._online.values()) if cores is None else cores
        placement = {}
        for d, n in self._online.items():
            take = min(n, left)
            if take > 0:
                placement[d] = take
                left -= take
        return placement

    def _instant(self) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """Utilisation, domain power and rails of the current state."""
        demand = self._demand()
        util = {d: min(1.0, demand[d] / self._cores(d)) if self._cores(d) else 0.0 for d in self._names}
        dp = {d: self.power_model.domain_power(d, self.effective_hz(d), util[d], self._cores(d))
              for d in self._names}
        return util, dp, self.power_model.rails(dp, util, self.mode.emc_max_hz)

    def _demand(self) -> dict[str, float]:
        demand = {d: self._load[d] * self._cores(d) for d in self._names}
        for j in self._jobs.values():
            for d, n in self._placement(j.domain, j.cores).items():
                demand[d] += n
        return demand

    def _cum_at(self, t: float) -> np.ndarray:
        i = bisect.bisect_right(self._hist_t, t) - 1
        if i >= len(self._hist_t) - 1:
            return self._cum
        t0, t1 = self._hist_t[i], self._hist_t[i + 1]
        a = (t - t0) / (t1 - t0)
        return self._hist_v[i] + a * (self._hist_v[i + 1] - self._hist_v[i])

    def _advance(self, target: float, stop_job: int | None = None) -> None:
        """Integrate segment by segment until ``target`` or until ``stop_job`` ends."""
        while self._t < target - _EPS:
            demand = self._demand()
            share = {d: min(1.0, self._cores(d) / demand[d]) if demand[d] > 0 else 1.0 for d in self._names}
            util, dp, rails = self._instant()
            times = {}
            for jid, j in self._jobs.items():
                placement = self._placement(j.domain, j.cores)
                times[jid] = frame_time(j.work, [(self.effective_hz(d), n, share[d]) for d, n in placement.items()])
            end = min(target, self._next_poll, *(self._t + j.remaining * times[i] for i, j in self._jobs.items()))
            dt = end - self._t
            dyn = {d: self.power_model.dynamic_power(d, self.effective_hz(d), util[d], self._cores(d))
                   for d in self._names}
            for jid, j in list(self._jobs.items()):
                j.remaining -= dt / times[jid]
                for d, n in self._placement(j.domain, j.cores).items():
                    j.energy_j += dyn[d] * n / demand[d] * dt
                if j.remaining * times[jid] <= _EPS:
                    del self._jobs[jid]
                    self._finished.append(FrameResult(j.app_id, jid, j.domain, end - j.start_s, j.start_s, end,
                                                      j.energy_j))
            self._cum += dt * np.array([util[d] for d in self._names] + [rails[r] for r in RAILS])
            self.thermal.step(dt, dp, rails["VDD_IN"])
            self._t = end
            if end >= self._next_poll - _EPS:
                self.thermal.poll()
                self._next_poll += self.config.thermal.poll_s
            self._record()
            if stop_job is not None and stop_job not in self._jobs:
                break
        if isinstance(self.clock, SimClock):
            self.clock.t = self._t

    def _record(self) -> None:
        self._hist_t.append(self._t)
        self._hist_v.append(self._cum.copy())
        cut = bisect.bisect_left(self._hist_t, self._t - _HISTORY_S) - 1
        if cut > 64:
            del self._hist_t[:cut]
            del self._hist_v[:cut]
