"""Demo targets placed between the measured level times."""

from __future__ import annotations

import numpy as np
import pytest

from dynofa_ros.manager.demo_targets import demo_targets

TIMES = [0.0012, 0.0014, 0.0016, 0.0019, 0.0050]
TOP1 = [0.8256, 0.8390, 0.8495, 0.8553, 0.8709]


def _admitted(floor: float) -> list[int]:
    floor32 = float(np.float32(floor))  # as a PerformanceTarget message carries it
    return [i for i, a in enumerate(TOP1) if a >= floor32]


def test_start_admits_the_two_most_accurate_levels_at_full_speed_with_room_to_slow_down() -> None:
    start, change = demo_targets(TIMES, TOP1, slack=2.0)
    assert _admitted(start.min_accuracy) == [3, 4]
    assert start.max_latency_s == pytest.approx(2.0 * TIMES[4])
    assert all(TIMES[i] < start.max_latency_s for i in (3, 4))


def test_change_admits_every_level_and_only_the_fast_ones_fit() -> None:
    _, change = demo_targets(TIMES, TOP1, slack=2.0)
    assert _admitted(change.min_accuracy) == [0, 1, 2, 3, 4]
    assert [i for i, t in enumerate(TIMES) if t <= change.max_latency_s] == [0, 1, 2, 3]
    assert "L0" in change.why


def test_levels_without_accuracy_get_no_floor_and_one_level_works() -> None:
    start, change = demo_targets([0.004], [None], slack=2.0)
    assert (start.min_accuracy, change.min_accuracy) == (0.0, 0.0)
    assert start.max_latency_s == change.max_latency_s == pytest.approx(0.008)


@pytest.mark.parametrize("times, top1, slack", [([], [], 2.0), ([0.001], [0.8, 0.9], 2.0),
                                                ([0.0, 0.002], [0.8, 0.9], 2.0), ([0.001], [0.8], 1.0),
                                                ([float("nan")], [0.8], 2.0)])
def test_bad_input(times, top1, slack) -> None:
    with pytest.raises(ValueError):
        demo_targets(times, top1, slack)
