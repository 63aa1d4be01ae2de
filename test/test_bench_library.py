"""The library benchmark's goal checks (benchmarks/bench_library.py) pass and fail where they should."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_library.py"
spec = importlib.util.spec_from_file_location("bench_library", BENCH)
bench_library = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_library)


def levels(top1: list[float], ms: list[float], recorded: list[float] | None = None) -> list[dict]:
    return [{"top1_now": t, "top1_recorded": r, "cpu-1t": {"p50_s": m / 1e3}}
            for t, m, r in zip(top1, ms, recorded or top1, strict=True)]


def verdicts(rows: list[tuple[str, str, bool]]) -> list[bool]:
    return [ok for _, _, ok in rows]


def test_a_library_meeting_every_target_passes() -> None:
    rows = bench_library.goals(levels([0.85, 0.87, 0.89, 0.91, 0.93], [4, 5, 6, 8, 12.5]), full_test_set=True)
    assert verdicts(rows) == [True] * 5


def test_each_missed_target_fails_on_its_own() -> None:
    shipped = levels([0.7775, 0.7845, 0.7972, 0.8039, 0.8224], [3.89, 3.95, 4.64, 5.62, 12.33])
    assert verdicts(bench_library.goals(shipped, True)) == [False, False, True, True, True]
    unordered = levels([0.85, 0.90, 0.89, 0.91, 0.93], [4, 5, 6, 8, 12.5])
    assert verdicts(bench_library.goals(unordered, True))[2] is False
    noisy = levels([0.85, 0.87, 0.89, 0.91, 0.93], [4, 3.9, 6, 8, 12.5])  # 2.5 % inversion: timing noise
    assert verdicts(bench_library.goals(noisy, True))[2] is True
    inverted = levels([0.85, 0.87, 0.89, 0.91, 0.93], [4, 3.7, 6, 8, 12.5])
    assert verdicts(bench_library.goals(inverted, True))[2] is False
    narrow = levels([0.85, 0.87, 0.89, 0.91, 0.93], [4, 5, 6, 8, 11.9])
    assert verdicts(bench_library.goals(narrow, True))[3] is False
    four = levels([0.85, 0.87, 0.89, 0.93], [4, 5, 6, 12.5])
    assert verdicts(bench_library.goals(four, True))[2] is False
    drifted = levels([0.85, 0.87, 0.89, 0.91, 0.93], [4, 5, 6, 8, 12.5], [0.85, 0.87, 0.89, 0.91, 0.9311])
    assert verdicts(bench_library.goals(drifted, True))[4] is False
    ten_images = levels([0.8511, 0.87, 0.89, 0.91, 0.93], [4, 5, 6, 8, 12.5], [0.8501, 0.87, 0.89, 0.91, 0.93])
    assert verdicts(bench_library.goals(ten_images, True))[4] is True  # exactly 0.1 points passes
    assert len(bench_library.goals(drifted, False)) == 4  # a test subset cannot check the recorded top-1
