"""640×480 frames from a publisher in another process (Fast DDS's defaults, as a camera driver has them) reach a
perception node started as ``ros2 run`` starts it (its own process, default parameters): >= 95 % of them from a
reliable and from a best-effort publisher, the image subscription matched to each, and no loss estimated that did
not happen. The harness is the frames benchmark's (benchmarks/bench_frames.py), with the tiny test library."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_frames.py"
spec = importlib.util.spec_from_file_location("bench_frames", BENCH)
bench_frames = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_frames  # its dataclasses look their module up while it loads
spec.loader.exec_module(bench_frames)

FRAMES = 120  # 4 s at 30 Hz per publisher
# best-effort frames are not repaired: the kernel's socket buffer limit must hold one (208 KB, Ubuntu's default,
# lost most 640x480 frames here; 512 KB lost none)
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")
BEST_EFFORT_RMEM = 512 * 1024


def test_large_frames_from_another_process_reach_the_node(ros_context, tiny_library, tmp_path):
    rmem_max = int(RMEM_MAX.read_text()) if RMEM_MAX.exists() else 0
    cases = [bench_frames.Case(640, 480, "reliable", "rgb8"), bench_frames.Case(640, 480, "best_effort", "bgr8")]
    if rmem_max < BEST_EFFORT_RMEM:
        cases = cases[:1]
    node = bench_frames.NodeUnderTest(ros_context, dict(os.environ), bench_frames.SETUPS[-1],
                                      {"library": str(tiny_library), "threads": 1}, tmp_path / "perception.log")
    try:
        node.wait_active()
        results = [node.measure(case, FRAMES, 30.0) for case in cases]
    finally:
        node.close()
    for r in results:
        assert r.sent == FRAMES and r.share >= bench_frames.GOAL, r
        assert 0 <= r.lost <= r.sent - r.reached, r  # the estimate finds no gap that was not there
    assert [r.image_qos for r in results] == ["reliable", "sensor_data"][:len(cases)]
    if len(cases) == 1:
        pytest.skip(f"best-effort case not run: net.core.rmem_max is {rmem_max} B, below {BEST_EFFORT_RMEM} B "
                    "(README, Camera frames between processes)")
