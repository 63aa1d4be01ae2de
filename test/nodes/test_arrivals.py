"""Lost frames estimated from the stamps of the frames that arrived (plain Python), on synthetic stamp sequences."""

from __future__ import annotations

import numpy as np
import pytest

from dynofa_ros.report.arrivals import ArrivalGaps, serialized_stamp

PERIOD = 1 / 30


def _stamps(n: int, lost: set[int] = frozenset(), jitter: float = 0.0, seed: int = 0, t0: float = 100.0,
            period: float = PERIOD) -> list[float]:
    """Stamps of frames 0..n-1 at ``period`` (± ``jitter`` periods, uniform) without the frames in ``lost``."""
    noise = np.random.default_rng(seed).uniform(-jitter, jitter, n) * period
    return [t0 + i * period + noise[i] for i in range(n) if i not in lost]


def _count(stamps: list[float], gaps: ArrivalGaps | None = None) -> ArrivalGaps:
    gaps = gaps or ArrivalGaps()
    for t in stamps:
        gaps.add(t)
    return gaps


def test_a_steady_stream_loses_nothing():
    gaps = _count(_stamps(300, jitter=0.2))
    assert (gaps.arrived, gaps.lost) == (300, 0)
    assert gaps.interval_s == pytest.approx(PERIOD, rel=0.05)


@pytest.mark.parametrize("jitter", [0.0, 0.2])
def test_single_and_runs_of_missing_frames_are_counted(jitter):
    lost = {10, 40, 41, 42, 100, 150, 151, 299}  # 299 is the last frame: nothing after it shows the gap
    gaps = _count(_stamps(300, lost, jitter=jitter))
    assert gaps.arrived == 300 - len(lost) and gaps.lost == len(lost) - 1


def test_random_loss_of_a_tenth_is_counted_exactly():
    rng = np.random.default_rng(1)
    lost = {int(i) for i in np.flatnonzero(rng.random(2000) < 0.1) if 0 < i < 1999}
    assert _count(_stamps(2000, lost, jitter=0.1)).lost == len(lost)


def test_gaps_before_the_interval_is_known_are_judged_once_it_is():
    gaps = ArrivalGaps(min_intervals=5)
    revealed = [gaps.add(t) for t in _stamps(20, lost={2, 3})]
    assert revealed[2] == 0 and sum(revealed) == gaps.lost == 2  # seen at the 3rd frame, counted at the 6th
    assert revealed.index(2) == 5


def test_each_add_returns_what_it_reveals():
    gaps = _count(_stamps(20))
    assert gaps.add(100 + 25 * PERIOD) == 5 and gaps.lost == 5  # frames 20..24 missing, then 25 arrives


def test_restart_ignores_the_pause_and_stamps_that_do_not_advance_give_no_gap():
    gaps = _count(_stamps(30))
    gaps.restart()  # e.g. the subscriber was inactive for 10 s
    _count(_stamps(30, t0=200.0), gaps)
    assert (gaps.arrived, gaps.lost) == (60, 0)
    unstamped = _count([0.0] * 50)
    assert (unstamped.arrived, unstamped.lost, unstamped.interval_s) == (50, 0, None)
    restarted = _count([*_stamps(30), *_stamps(30, t0=50.0)])  # the publisher's clock went back: a new run
    assert restarted.lost == 0


def test_a_slower_publisher_is_taken_for_a_lossy_one_for_half_a_window_at_most():
    slow_from = 100 + 300 * PERIOD
    gaps = _count([*_stamps(300), *_stamps(300, t0=slow_from, period=2 * PERIOD)])
    assert 0 < gaps.lost <= gaps.window // 2 + 1
    before = gaps.lost
    _count(_stamps(100, t0=slow_from + 300 * 2 * PERIOD, period=2 * PERIOD), gaps)
    assert gaps.lost == before and gaps.interval_s == pytest.approx(2 * PERIOD)


def test_a_long_silence_is_a_pause_not_loss():
    gaps = _count(_stamps(300, lost=set(range(100, 130))))  # 1 s without frames: lost on the way
    assert gaps.lost == 30
    paused = _count(_stamps(300, lost=set(range(100, 190))))  # 3 s: the publisher paused or was replaced
    assert paused.lost == 0 and paused.arrived == 210


def test_settings_are_checked():
    with pytest.raises(ValueError, match="gap_factor"):
        ArrivalGaps(gap_factor=1.0)
    with pytest.raises(ValueError, match="min_intervals"):
        ArrivalGaps(window=4, min_intervals=5)
    with pytest.raises(ValueError, match="pause_s"):
        ArrivalGaps(pause_s=0.0)


def test_stamp_of_a_serialized_image_without_deserializing_it():
    assert serialized_stamp(b"") is None and serialized_stamp(b"\x00\x05" + bytes(20)) is None
    little = b"\x00\x01\x00\x00" + (7).to_bytes(4, "little") + (5 * 10**8).to_bytes(4, "little")
    big = b"\x00\x00\x00\x00" + (7).to_bytes(4, "big") + (5 * 10**8).to_bytes(4, "big")
    assert serialized_stamp(little) == serialized_stamp(big) == 7.5
    pytest.importorskip("rclpy")
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    for msg in (Image(height=2, width=3, encoding="rgb8", data=bytes(18)), CompressedImage(format="jpeg")):
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123_456_789
        msg.header.frame_id = "camera"
        assert serialized_stamp(serialize_message(msg)) == pytest.approx(1_700_000_000.123456789, abs=1e-6)
