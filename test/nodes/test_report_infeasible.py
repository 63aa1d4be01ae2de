"""The run report counts the frames of an infeasible-target stretch apart from the ordinary misses (no ROS)."""

from __future__ import annotations

import pytest

from dynofa_ros.report.run_report import RunLog, summarise


def test_frames_while_the_target_was_infeasible_are_counted_apart():
    log = RunLog(simulated=True)
    s = log.apps["cam"]
    s.t = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    s.latency_s = [0.030, 0.050, 0.060, 0.020, 0.050, 0.030]
    s.level = [0] * 6
    log.targets["cam"] = [(0.0, 0.040)]
    log.set_infeasible("cam", 1.2, "target below the fastest setting's latency")
    log.set_infeasible("cam", 1.3, "target below the fastest setting's latency")  # said again: one stretch
    log.set_infeasible("cam", 2.2, None)
    log.set_infeasible("cam", 2.8, "thermal frequency cap")
    assert log.infeasible["cam"] == [(1.2, 2.2, "target below the fastest setting's latency"),
                                     (2.8, None, "thermal frequency cap")]
    app = summarise(log, 3.5)["apps"]["cam"]
    assert app["frames_infeasible"] == 3 and app["infeasible_misses"] == 1  # 1.5 (late), 2.0, 3.0
    assert app["target_miss_rate"] == pytest.approx(2 / 3)  # 0.5, 1.0 (late), 2.5 (late)
    assert [span["cause"] for span in app["infeasible"]] == ["target below the fastest setting's latency",
                                                              "thermal frequency cap"]
