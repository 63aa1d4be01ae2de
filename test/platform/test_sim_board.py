"""SimulatedBoard: Platform contract, DVFS rules, processor sharing, energy accounting, clocks."""

import pytest

from dynofa_ros.platform.base import Platform
from dynofa_ros.platform.sim import RealTimeClock, SimulatedBoard, xavier_work
from dynofa_ros.platform.sim.emulation import dvfs_slowdown
from dynofa_ros.platform.types import DvfsSetting

GPU_MAX = 1_109_250_000


@pytest.fixture()
def board() -> SimulatedBoard:
    return SimulatedBoard.from_config(None, mode="15W_6CORE", ambient_c=25.0, seed=0)


def test_is_a_platform_and_every_state_says_simulated(board):
    assert isinstance(board, Platform) and board.simulated
    board.run_frame("a", "gpu", xavier_work(100e6, "gpu", board.config))
    s = board.read()
    assert s.simulated
    assert {d.governor for d in s.domains.values()} == {"simulated"}
    assert set(s.power_w) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    assert set(s.temperatures_c) == {"CPU-therm", "GPU-therm", "Tboard_tegra"}


def test_apply_refuses_off_table_and_above_cap_with_reasons(board):
    res = board.apply([DvfsSetting("gpu", freq_hz=500_000_000), DvfsSetting("cpu0", freq_hz=1_907_200_000),
                       DvfsSetting("npu", freq_hz=1), DvfsSetting("cpu0", online_cores=0),
                       DvfsSetting("gpu", online_cores=1), DvfsSetting("cpu2", freq_hz=729_600_000)])
    reasons = [r for _, r in res.refused]
    assert not res.ok and len(reasons) == 5
    assert "not in gpu's table (nearest 510000000 Hz)" in reasons[0]
    assert "above the 15W_6CORE cap" in reasons[1]
    assert "unknown domain" in reasons[2]
    assert "cpu0 online cores must be 1..2" in reasons[3]
    assert "no cores" in reasons[4]
    assert res.applied == [DvfsSetting("cpu2", freq_hz=729_600_000)]
    assert board.read().domains["cpu2"].cur_hz == 729_600_000
    assert board.read().domains["gpu"].cur_hz == GPU_MAX


def test_modes_cap_frequencies_and_cores(board):
    board.set_mode("10W_2CORE")
    s = board.read()
    assert s.domains["gpu"].cur_hz == 803_250_000 and s.domains["gpu"].max_hz == 803_250_000
    assert [s.domains[d].online_cores for d in ("cpu0", "cpu2", "cpu4")] == [2, 0, 0]
    assert max(board.domains()[0].frequencies_hz) == 1_497_600_000
    with pytest.raises(ValueError, match="no online cores"):
        board.submit("a", "cpu2", xavier_work(10e6, "cpu", board.config))
    assert not board.apply([DvfsSetting("cpu4", online_cores=1)]).ok
    with pytest.raises(ValueError, match="unknown mode"):
        board.set_mode("30W")


def test_run_frame_latency_follows_frequency(board):
    work = xavier_work(300e6, "gpu", board.config)
    fast = board.run_frame("a", "gpu", work)
    assert fast.latency_s == pytest.approx(board.predict_latency(work, "gpu", GPU_MAX))
    board.apply([DvfsSetting("gpu", freq_hz=306_000_000)])
    slow = board.run_frame("a", "gpu", work)
    assert slow.latency_s > fast.latency_s and slow.start_s == pytest.approx(fast.end_s)
    assert 0 < fast.energy_j


def test_processor_sharing_between_apps_and_background_load(board):
    work = xavier_work(300e6, "gpu", board.config)
    alone = board.predict_latency(work, "gpu")
    board.submit("a", "gpu", work)
    board.submit("b", "gpu", work)
    done = board.advance_to(1.0)
    assert [r.app_id for r in done] == ["a", "b"]
    assert all(r.latency_s == pytest.approx(2 * alone) for r in done)
    board.set_load("gpu", 0.5)
    r = board.run_frame("a", "gpu", work)
    assert r.latency_s == pytest.approx(1.5 * alone)
    board.clear_load("gpu")
    assert board.run_frame("a", "gpu", work).latency_s == pytest.approx(alone)
    # CPU: a 2-thread frame on a 2-core cluster with one competing core's worth of load
    cpu_work = xavier_work(50e6, "cpu", board.config)
    board.set_load("cpu0", 0.5)
    r = board.run_frame("c", "cpu0", cpu_work, cores=2)
    assert r.latency_s == pytest.approx(board.predict_latency(cpu_work, "cpu0", cores=2, share=2 / 3))


def test_frames_overlap_in_a_periodic_harness(board):
    gpu_work = xavier_work(300e6, "gpu", board.config)
    cpu_work = xavier_work(20e6, "cpu", board.config)
    finished = []
    for k in range(60):
        finished += board.advance_to(k / 30)
        for app, dom, w in (("det", "gpu", gpu_work), ("cls", "cpu", cpu_work)):
            if not board.is_running(app):
                board.submit(app, dom, w)
    finished += board.advance_to(2.5)
    assert {r.app_id for r in finished} == {"det", "cls"}
    assert all(r.end_s > r.start_s for r in finished)
    assert 0.3 < board.utilisation("gpu", 1.0) <= 1.0


def test_energy_integrates_power_over_time(board):
    board.set_load("gpu", 0.6)
    p = board.read().power_w["VDD_IN"]  # instantaneous at t = 0
    board.advance_to(10.0)
    s = board.read()
    assert s.energy_j == pytest.approx(p * 10.0, rel=1e-9)
    assert s.power_w["VDD_IN"] == pytest.approx(p)
    assert s.domains["gpu"].utilisation == pytest.approx(0.6)


def test_frame_energy_is_its_share_of_dynamic_energy(board):
    work = xavier_work(300e6, "gpu", board.config)
    dyn = board.power_model.dynamic_power("gpu", board.effective_hz("gpu"), 1.0, 1)  # GPU fully busy
    alone = board.run_frame("a", "gpu", work)
    assert alone.energy_j > 0
    assert alone.energy_j == pytest.approx(dyn * alone.latency_s)  # the whole domain, for the whole frame
    board.set_load("gpu", 0.5)  # demand 0.5 + 1 + 1: each frame gets 1/2.5 of the dynamic power
    board.submit("a", "gpu", work)
    board.submit("b", "gpu", work)
    shared = board.advance_to(board.now + 1.0)
    assert len(shared) == 2 and all(r.energy_j > 0 for r in shared)
    assert shared[0].energy_j == pytest.approx(shared[1].energy_j)  # same work, same f: same energy
    busy_s = shared[0].end_s - shared[0].start_s
    assert sum(r.energy_j for r in shared) == pytest.approx(dyn * busy_s * 2 / 2.5)


def test_seeded_noise_is_deterministic():
    def latencies(seed):
        b = SimulatedBoard.from_config(seed=seed, noise_sigma=0.1)
        w = xavier_work(300e6, "gpu", b.config)
        return [b.run_frame("a", "gpu", w).latency_s for _ in range(5)]

    assert latencies(1) == latencies(1)
    assert latencies(1) != latencies(2)


def test_time_only_moves_forward(board):
    board.idle(1.0)
    with pytest.raises(ValueError, match="back in time"):
        board.advance_to(0.5)
    with pytest.raises(ValueError, match="work for gpu"):
        board.submit("a", "cpu0", xavier_work(1e6, "gpu", board.config))


def test_realtime_clock_follows_wall_time_and_emulates_dvfs_slowdown():
    board = SimulatedBoard.from_config(clock=RealTimeClock())
    with pytest.raises(RuntimeError):
        board.advance_to(1.0)
    work = xavier_work(300e6, "gpu", board.config)
    board.submit("a", "gpu", work)
    t1 = board.read().stamp_s
    assert board.read().stamp_s >= t1 > 0
    assert dvfs_slowdown(board.read(), "gpu") == pytest.approx(1.0)
    board.apply([DvfsSetting("gpu", freq_hz=510_000_000)])
    assert dvfs_slowdown(board.read(), "gpu") == pytest.approx(GPU_MAX / 510_000_000)
