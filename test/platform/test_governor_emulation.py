"""Linux governor emulations follow their documented rules, and drive the simulated board."""

import pytest

from dynofa_ros.platform.governors import (
    Conservative,
    Ondemand,
    Performance,
    Powersave,
    Schedutil,
    SimpleOndemand,
    ceil_freq,
    floor_freq,
    make_governor,
)
from dynofa_ros.platform.sim import SimulatedBoard, xavier_work
from dynofa_ros.platform.types import DomainInfo, DvfsSetting

CPU = DomainInfo("cpu0", "cpu", tuple(int(f) for f in range(100_000_000, 2_000_000_001, 100_000_000)), (0, 1))
FMIN, FMAX = CPU.frequencies_hz[0], CPU.frequencies_hz[-1]
GPU = DomainInfo("gpu", "gpu", (114_750_000, 306_000_000, 510_000_000, 803_250_000, 1_109_250_000))


def test_performance_and_powersave():
    assert Performance().next_frequency(CPU, FMIN, 0.0, 0.01) == FMAX
    assert Powersave().next_frequency(CPU, FMAX, 1.0, 0.01) == FMIN


def test_table_rounding():
    assert ceil_freq(CPU.frequencies_hz, 1_050_000_000) == 1_100_000_000
    assert floor_freq(CPU.frequencies_hz, 1_050_000_000) == 1_000_000_000
    assert ceil_freq(CPU.frequencies_hz, 9e9) == FMAX and floor_freq(CPU.frequencies_hz, 0) == FMIN


def test_ondemand_jumps_to_max_above_threshold_else_proportional():
    g = Ondemand()
    assert g.next_frequency(CPU, FMIN, 0.85, 0.01) == FMAX
    assert g.next_frequency(CPU, FMAX, 0.5, 0.01) == 1_000_000_000  # 0.1 + 0.5 * 1.9 GHz = 1.05 -> closest
    assert g.next_frequency(CPU, FMAX, 0.8, 0.01) < FMAX  # threshold is strict
    # decisions only once per sampling period: the average of the period counts
    g = Ondemand(sampling_rate_s=0.02)
    assert g.next_frequency(CPU, FMIN, 1.0, 0.01) == FMIN
    assert g.next_frequency(CPU, FMIN, 0.7, 0.01) == FMAX  # mean 0.85 > 0.80


def test_conservative_steps_five_percent_of_max():
    g = Conservative()
    step = 0.05 * FMAX  # 100 MHz
    f = FMIN
    for _ in range(3):
        nxt = g.next_frequency(CPU, f, 0.95, 0.01)
        assert nxt == floor_freq(CPU.frequencies_hz, f + step)
        f = nxt
    assert f == FMIN + 3 * step
    assert g.next_frequency(CPU, f, 0.5, 0.01) == f  # between thresholds: hold
    assert g.next_frequency(CPU, f, 0.1, 0.01) == f - step
    with pytest.raises(ValueError):
        Conservative(up_threshold=20, down_threshold=30)


def test_schedutil_formula_rounds_up():
    g = Schedutil(pelt_halflife_s=0.0)
    # frequency-invariant util = 0.4 * cur / max; f = 1.25 * max * util
    cur = 1_600_000_000
    target = 1.25 * FMAX * 0.4 * cur / FMAX
    assert g.next_frequency(CPU, cur, 0.4, 0.01) == ceil_freq(CPU.frequencies_hz, target) == 800_000_000
    assert g.next_frequency(CPU, FMAX, 0.9, 0.01) == FMAX
    assert g.next_frequency(CPU, FMAX, 0.0, 0.01) == FMIN


def test_schedutil_pelt_smoothing_ramps_gradually():
    g = Schedutil()
    g.next_frequency(CPU, FMAX, 0.0, 0.01)
    first = g.next_frequency(CPU, FMAX, 1.0, 0.01)
    assert FMIN < first < FMAX
    f = first
    for _ in range(30):
        f = g.next_frequency(CPU, f, 1.0, 0.01)
    assert f == FMAX


def test_simple_ondemand_devfreq_rules():
    g = SimpleOndemand(sampling_rate_s=0.01)
    assert g.next_frequency(GPU, 306_000_000, 0.95, 0.01) == GPU.frequencies_hz[-1]
    assert g.next_frequency(GPU, 803_250_000, 0.87, 0.01) == 803_250_000  # within downdifferential: keep
    # 803.25 MHz * 40 / 87.5 = 367 MHz -> rounded up to 510 MHz
    assert g.next_frequency(GPU, 803_250_000, 0.40, 0.01) == 510_000_000


def test_make_governor_and_input_checks():
    assert isinstance(make_governor("conservative", freq_step=10.0), Conservative)
    with pytest.raises(ValueError, match="unknown governor"):
        make_governor("interactive")
    with pytest.raises(ValueError, match="utilisation"):
        Performance().next_frequency(CPU, FMAX, 1.5, 0.01)
    with pytest.raises(ValueError, match="no frequencies"):
        Powersave().next_frequency(DomainInfo("x", "cpu", ()), 0, 0.5, 0.01)


def _run(governor_name: str) -> tuple[float, float]:
    """One 30 Hz GPU app for 3 s under a GPU governor sampled every 10 ms; (energy J, mean latency s)."""
    board = SimulatedBoard.from_config(seed=0)
    gov = make_governor(governor_name)
    info = {d.name: d for d in board.domains()}["gpu"]
    work = xavier_work(150e6, "gpu", board.config)
    lat = []
    for k in range(300):
        t = k * 0.01
        lat += [r.latency_s for r in board.advance_to(t)]
        if k % 3 == 0 and not board.is_running("app"):
            board.submit("app", "gpu", work)
        cur = board.read().domains["gpu"].cur_hz
        f = gov.next_frequency(info, cur, board.utilisation("gpu", 0.01), 0.01)
        assert board.apply([DvfsSetting("gpu", freq_hz=f)]).ok
    return board.read().energy_j, sum(lat) / len(lat)


def test_governors_trade_energy_for_latency_on_the_board():
    e_perf, l_perf = _run("performance")
    e_save, l_save = _run("powersave")
    e_sched, l_sched = _run("schedutil")
    assert e_save < e_sched < e_perf
    assert l_perf <= l_sched < l_save
