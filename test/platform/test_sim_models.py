"""Power, latency and thermal models of the simulated Xavier NX, and its YAML loader."""

from pathlib import Path

import pytest
import yaml

from dynofa_ros.package_files import package_file
from dynofa_ros.platform.sim import BoardConfig, BoardConfigError, DnnWork, SimulatedBoard, xavier_work
from dynofa_ros.platform.sim.config import DEFAULT_CONFIG
from dynofa_ros.platform.sim.latency import frame_time
from dynofa_ros.platform.sim.power import PowerModel
from dynofa_ros.platform.types import DvfsSetting


@pytest.fixture(scope="module")
def config() -> BoardConfig:
    return BoardConfig.load()


def test_shipped_config_matches_published_tables(config):
    assert [d.name for d in config.domains] == ["cpu0", "cpu2", "cpu4", "gpu"]
    gpu = config.domain("gpu")
    assert len(gpu.frequencies_hz) == 15
    assert gpu.frequencies_hz[0] == 114_750_000 and gpu.frequencies_hz[-1] == 1_109_250_000
    assert config.domain("cpu0").frequencies_hz[-1] == 1_907_200_000
    caps = {m.name: (m.online_cores, m.cpu_max_hz, m.gpu_max_hz) for m in config.modes.values()}
    assert caps["15W_2CORE"] == (2, 1_907_200_000, 1_109_250_000)
    assert caps["10W_4CORE"] == (4, 1_190_400_000, 803_250_000)
    assert caps["20W_6CORE"] == (6, 1_420_800_000, 1_109_250_000)


def test_power_rises_with_frequency_and_utilisation(config):
    pm = PowerModel(config)
    for name, cores in (("cpu0", 2), ("gpu", 1)):
        table = config.domain(name).frequencies_hz
        powers = [pm.domain_power(name, f, 1.0, cores) for f in table]
        assert all(b > a for a, b in zip(powers, powers[1:], strict=False))
        assert pm.domain_power(name, table[-1], 0.2, cores) < pm.domain_power(name, table[-1], 0.8, cores)
    with pytest.raises(ValueError, match="utilisation"):
        pm.dynamic_power("gpu", table[-1], 1.5, 1)


def test_latency_falls_with_frequency_and_cores(config):
    board = SimulatedBoard(config)
    for kind, domain in (("cpu", "cpu0"), ("gpu", "gpu")):
        work = xavier_work(300e6, kind, config)
        table = board.domains()[[d.name for d in board.domains()].index(domain)].frequencies_hz
        lat = [board.predict_latency(work, domain, f) for f in table]
        assert all(b < a for a, b in zip(lat, lat[1:], strict=False))
    cpu_work = xavier_work(300e6, "cpu", config)
    assert board.predict_latency(cpu_work, "cpu", cores=6) < board.predict_latency(cpu_work, "cpu", cores=2)
    assert board.predict_latency(cpu_work, "cpu0", share=0.5) == pytest.approx(
        2 * board.predict_latency(cpu_work, "cpu0"))


def test_xavier_scale_matches_paper_ranges(config):
    board = SimulatedBoard(config)
    gpu = [board.predict_latency(xavier_work(m, "gpu", config), "gpu") for m in (230e6, 600e6)]
    assert gpu[0] == pytest.approx(0.041, rel=0.05) and gpu[1] == pytest.approx(0.062, rel=0.05)
    cpu = [board.predict_latency(xavier_work(m, "cpu", config), "cpu", cores=6) for m in (230e6, 600e6)]
    assert 0.4 < cpu[0] < 0.8 and 1.2 < cpu[1] < 2.0


def test_work_time_follows_the_model_and_scales_with_macs():
    work = DnnWork("cpu", cycles=2.7e7, overhead_s=0.0015, parallel_fraction=0.8, macs=20e6)
    board = SimulatedBoard.from_config()
    # on a cluster held at 2.0 GHz (not a table step: use the model directly)
    assert frame_time(work, [(2.0e9, 2, 1.0)]) == pytest.approx(0.0015 + 2.7e7 * (0.2 + 0.8 / 2) / 2.0e9)
    bigger = work.scaled_to(40e6)
    assert bigger.cycles == pytest.approx(2 * work.cycles) and bigger.overhead_s == work.overhead_s
    assert board.predict_latency(bigger, "cpu0", cores=2) > board.predict_latency(work, "cpu0", cores=2)
    with pytest.raises(ValueError):
        DnnWork("cpu", cycles=0.0)


@pytest.mark.parametrize("mode", ["15W_2CORE", "15W_4CORE", "15W_6CORE", "10W_2CORE", "10W_4CORE", "20W_6CORE"])
def test_modes_land_near_budget_at_full_load_and_idle_is_light(mode, config):
    board = SimulatedBoard(config, mode=mode)
    full = board.predict_power({d.name: 1.0 for d in board.domains()})
    assert abs(full["VDD_IN"] / config.modes[mode].budget_w - 1) <= 0.20
    idle = board.read().power_w
    assert 3.6 <= idle["VDD_IN"] <= 3.9
    assert idle["VDD_IN"] > idle["VDD_CPU_GPU_CV"] + idle["VDD_SOC"]  # total, not a sum of sub-rails


def test_thermal_rises_throttles_when_hot_and_recovers(config):
    cool = SimulatedBoard(config, ambient_c=25.0)
    for d in cool.domains():
        cool.set_load(d.name, 1.0)
    cool.advance_to(300.0)
    s = cool.read()
    assert s.temperatures_c["CPU-therm"] > 50 and not any(s.throttled.values())

    hot = SimulatedBoard(config, ambient_c=60.0)
    for d in hot.domains():
        hot.set_load(d.name, 1.0)
    hot.advance_to(300.0)
    s = hot.read()
    assert s.throttled["CPU-therm"] and s.throttled["cpu0"] and s.throttled["gpu"]
    assert s.domains["cpu0"].cur_hz < 1_420_800_000 and s.domains["cpu0"].max_hz == s.domains["cpu0"].cur_hz
    work = xavier_work(300e6, "gpu", config)
    assert hot.predict_latency(work, "gpu") > cool.predict_latency(work, "gpu")
    for d in hot.domains():
        hot.clear_load(d.name)
    hot.advance_to(900.0)
    s = hot.read()
    assert not any(s.throttled.values()) and s.domains["cpu0"].cur_hz == 1_420_800_000
    assert s.temperatures_c["CPU-therm"] < 90


def test_config_errors_are_clear(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        BoardConfig.load(tmp_path / "missing.yaml")
    raw = yaml.safe_load(package_file(*DEFAULT_CONFIG).read_text())
    raw["modes"]["15W_6CORE"]["gpu_max_mhz"] = 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(BoardConfigError, match="not in gpu's table"):
        BoardConfig.load(bad)
    raw["modes"]["15W_6CORE"]["gpu_max_mhz"] = 1109.25
    del raw["power"]
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(BoardConfigError, match="power"):
        BoardConfig.load(bad)


def test_apply_then_power_reflects_lower_frequency(config):
    board = SimulatedBoard(config)
    high = board.predict_power({"gpu": 1.0})["VDD_IN"]
    assert board.apply([DvfsSetting("gpu", freq_hz=306_000_000)]).ok
    assert board.predict_power({"gpu": 1.0})["VDD_IN"] < high
