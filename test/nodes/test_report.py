"""Live-accuracy matching and the end-of-run report (plain Python)."""

from __future__ import annotations

import json
import math

import pytest

from dynofa_ros.report.evaluator import StampMatcher
from dynofa_ros.report.run_report import RunLog, summarise, write_report


def test_matcher_pairs_by_stamp_in_either_order():
    m = StampMatcher(capacity=10)
    assert m.add_result("a", (1, 0), predicted=3, level=0) is None  # label not seen yet
    done = m.add_label((1, 0), 3)
    assert [(x.app_id, x.correct) for x in done] == [("a", True)]
    m.add_label((2, 0), 4)
    assert m.add_result("a", (2, 0), predicted=5, level=1).correct is False
    assert m.add_result("b", (2, 0), predicted=4, level=0).correct is True
    assert m.add_label((3, 0), -1) == []  # unknown label
    assert m.accuracy("a") == 0.5 and m.accuracy("b") == 1.0 and math.isnan(m.accuracy("c"))


def test_matcher_forgets_old_unmatched_entries():
    m = StampMatcher(capacity=2)
    for i in range(5):
        m.add_label((i, 0), 1)
    assert m.add_result("a", (0, 0), 1, 0) is None
    assert m.add_result("a", (4, 0), 1, 0).correct
    with pytest.raises(ValueError, match="capacity"):
        StampMatcher(capacity=0)


def _log() -> RunLog:
    log = RunLog(simulated=True, board="board (simulated)")
    s = log.apps["app0"]
    s.t, s.latency_s, s.level = [0.5, 1.0, 1.5, 2.0], [0.010, 0.030, 0.010, 0.005], [2, 2, 1, 1]
    s.expected_accuracy = [0.9, 0.9, 0.8, 0.8]
    s.processed, s.dropped, s.lost = 4, 1, 2
    s.correct_t, s.correct = [0.5, 1.0, 1.5], [True, False, True]
    log.targets["app0"] = [(0.0, 0.020), (1.2, 0.008)]
    log.add_platform(0.0, {"cpu0": 1e9}, {"VDD_IN": 5.0}, {"CPU-therm": 40.0}, 0.0)
    log.add_platform(1.0, {"cpu0": 8e8, "gpu": 1e8}, {"VDD_IN": 4.0}, {}, 4.5)
    log.events.append((1.2, "target 8 ms"))
    return log


def test_summary_numbers():
    summary = summarise(_log(), 2.0)
    app = summary["apps"]["app0"]
    assert app["target_miss_rate"] == pytest.approx(0.5)  # 30 ms > 20 ms, 10 ms > 8 ms
    assert app["level_switches"] == 1 and app["level_share"] == {1: 0.5, 2: 0.5}
    assert app["live_accuracy"] == pytest.approx(2 / 3)
    assert summary["board_energy_j"] == pytest.approx(4.5) and summary["simulated"] is True
    assert "SIMULATED" in summary["note"]


def test_settled_miss_rate_leaves_out_the_frames_just_after_an_event():
    log = _log()
    log.events.insert(0, (0.9, "CPU load on"))  # frames at 1.0 (a miss), 1.5 and 2.0 are settling
    app = summarise(log, 2.0)["apps"]["app0"]
    assert app["target_miss_rate"] == pytest.approx(0.5) and app["target_miss_rate_settled"] == 0.0
    log.events[:] = [(0.1, "target 20 ms")]  # every frame within 2 s of it: none judged
    assert summarise(log, 2.0)["apps"]["app0"]["target_miss_rate_settled"] is None


def test_platform_samples_with_new_keys_are_padded():
    log = _log()
    assert math.isnan(log.freq_hz["gpu"][0]) and log.freq_hz["gpu"][1] == 1e8
    assert math.isnan(log.temp_c["CPU-therm"][1])


def test_write_report_files(tmp_path):
    summary = write_report(tmp_path / "run", _log(), 2.0, {"policy": "joint"})
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["policy"] == "joint" and on_disk["apps"]["app0"]["frames_dropped"] == 1
    assert on_disk["apps"]["app0"]["frames_lost"] == 2
    for name in summary["plots"]:
        assert (tmp_path / "run" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(summary["plots"]) == {"latency.png", "level.png", "frequency.png", "power.png", "accuracy.png"}


def test_manager_absence_and_return_are_in_the_report(tmp_path):
    log = _log()
    for t, managed in ((0.5, True), (1.0, False), (1.5, False), (1.8, True), (1.9, False)):
        log.set_managed("app0", t, managed)
    assert log.unmanaged["app0"] == [(1.0, 1.8), (1.9, None)]
    assert [w for _, w in log.events if "managed" in w] == ["app0 unmanaged", "app0 managed again", "app0 unmanaged"]
    app = write_report(tmp_path / "run", log, 2.0)["apps"]["app0"]
    assert app["unmanaged"] == [{"from_s": 1.0, "to_s": 1.8}, {"from_s": 1.9, "to_s": None}]
    assert app["unmanaged_s"] == pytest.approx(0.9)  # 0.8 s, then 0.1 s to the end of the run
    assert summarise(_log(), 2.0)["apps"]["app0"]["unmanaged"] == []
