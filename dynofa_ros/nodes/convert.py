"""Messages ⇄ the plain records of platform/ and manager/ (units are the same on both sides: s, Hz, W, °C, J)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from builtin_interfaces.msg import Time

from dynofa_ros.manager.records import AppReport, AppTarget
from dynofa_ros.msg import DomainState as DomainStateMsg
from dynofa_ros.msg import PerformanceReport, PerformanceTarget
from dynofa_ros.msg import PlatformState as PlatformStateMsg
from dynofa_ros.nodes.params import stamp_s
from dynofa_ros.platform.types import DomainInfo, DomainState, PlatformState


def state_to_msg(state: PlatformState, domains: Mapping[str, DomainInfo], board: str, stamp: Time
                 ) -> PlatformStateMsg:
    """PlatformState message of a platform record and the platform's ``domains`` (core counts, writability: a
    domain missing there has no cores and is not writable); ``board`` gets " (simulated)" when the record is."""
    msg = PlatformStateMsg(simulated=state.simulated, energy=state.energy_j, board_power=state.board_power_w,
                           power_source=state.power_source)
    msg.header.stamp = stamp
    msg.board = f"{board} (simulated)" if state.simulated and "simulated" not in board else board
    for d in state.domains.values():
        info = domains.get(d.name)
        msg.domains.append(DomainStateMsg(
            name=d.name, kind=d.kind, current_frequency=float(d.cur_hz), min_frequency=float(d.min_hz),
            max_frequency=float(d.max_hz), available_frequencies=[float(f) for f in d.available_hz],
            utilisation=d.utilisation, online_cores=d.online_cores,
            total_cores=len(info.cores) if info is not None else 0, governor=d.governor,
            throttled=bool(state.throttled.get(d.name, False)), writable=info is not None and info.writable))
    msg.rail_names = list(state.power_w)
    msg.rail_power = [float(v) for v in state.power_w.values()]
    msg.zone_names = list(state.temperatures_c)
    msg.zone_temperature = [float(v) for v in state.temperatures_c.values()]
    return msg


def msg_to_state(msg: PlatformStateMsg) -> PlatformState:
    """The platform record of a PlatformState message."""
    domains = {d.name: DomainState(d.name, d.kind, int(d.current_frequency), int(d.min_frequency),
                                   int(d.max_frequency), tuple(int(f) for f in d.available_frequencies),
                                   float(d.utilisation), int(d.online_cores), d.governor)
               for d in msg.domains}
    throttled = {d.name: bool(d.throttled) for d in msg.domains}
    return PlatformState(stamp_s(msg.header.stamp), bool(msg.simulated), domains,
                         dict(zip(msg.rail_names, map(float, msg.rail_power))),
                         dict(zip(msg.zone_names, map(float, msg.zone_temperature))), throttled, float(msg.energy),
                         float(msg.board_power), msg.power_source)


def msg_to_domains(msg: PlatformStateMsg) -> list[DomainInfo]:
    """DomainInfo per domain of a PlatformState message: its ``total_cores`` (numbered from 0 within the
    domain, online or not) and whether the platform can write it (``writable``)."""
    return [DomainInfo(d.name, d.kind, tuple(int(f) for f in d.available_frequencies),
                       tuple(range(max(int(d.total_cores), int(d.online_cores)))), writable=bool(d.writable))
            for d in msg.domains]


def report_to_record(msg: PerformanceReport) -> AppReport:
    """AppReport of a PerformanceReport (ValueError for a malformed one)."""
    return AppReport(msg.app_id, stamp_s(msg.header.stamp), int(msg.level), float(msg.latency),
                     accuracy=float(msg.expected_accuracy), energy_j=float(msg.energy_per_frame))


def target_to_record(msg: PerformanceTarget) -> AppTarget:
    """AppTarget of a PerformanceTarget; ValueError naming the field for NaN/inf/negative values."""
    for name in ("max_latency", "min_accuracy", "priority"):
        value = float(getattr(msg, name))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"PerformanceTarget.{name} must be finite and >= 0, got {value}")
    if msg.priority != int(msg.priority):
        raise ValueError(f"PerformanceTarget.priority must be a whole number, got {msg.priority}")
    budget = float(msg.energy_budget)
    if budget < 0 or math.isinf(budget):
        raise ValueError(f"PerformanceTarget.energy_budget must be finite and >= 0 (0/NaN = none), got {budget}")
    return AppTarget(msg.app_id, float(msg.max_latency), float(msg.min_accuracy), int(msg.priority),
                     energy_budget_j=None if math.isnan(budget) or budget == 0 else budget)
