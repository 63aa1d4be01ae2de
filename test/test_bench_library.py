"""The library benchmark's goal checks (benchmarks/bench_library.py) pass and fail where they should."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_library.py"
spec = importlib.util.spec_from_file_location("bench_library", BENCH)
bench_library = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench_library  # its dataclasses look their module up while it loads
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


def test_an_elastic_vit_library_is_checked_on_levels_order_and_span_only() -> None:
    vit = bench_library.TARGETS["elastic_vit"]
    assert vit.largest is vit.smallest is None and vit.backend == "auto"  # timed as the runtime serves it
    four = levels([0.60, 0.65, 0.70, 0.75], [1, 1.5, 2, 2.5])
    rows = bench_library.goals(four, True, vit)
    assert verdicts(rows) == [True, True, True]  # levels and order, span, recorded top-1: no accuracy target
    assert verdicts(bench_library.goals(four, False, vit)) == [True, True]
    narrow = levels([0.60, 0.65, 0.70, 0.75], [1, 1.5, 2, 2.4])
    assert verdicts(bench_library.goals(narrow, False, vit)) == [True, False]
    three = levels([0.60, 0.70, 0.75], [1, 2, 2.5])
    assert verdicts(bench_library.goals(three, False, vit)) == [False, True]
    unordered = levels([0.60, 0.70, 0.65, 0.75], [1, 1.5, 2, 2.5])
    assert verdicts(bench_library.goals(unordered, False, vit))[0] is False


def test_the_level_table_names_each_family_s_architecture() -> None:
    from dynofa_ros.supernet.arch import SubnetArch
    from dynofa_ros.supernet.library import Level
    from dynofa_ros.supernet.spec import SupernetSpec
    from dynofa_ros.supernet.vit_arch import ViTArch

    vit = [Level(f"L{i}", ViTArch(d, (2,) * d, (1.0,) * d, 64, 32), None, 1, 1) for i, d in enumerate((3, 4))]
    assert bench_library.arch_column(vit) == ("arch", ["e64_d3_h2-2-2_m1-1-1_r32", "e64_d4_h2-2-2-2_m1-1-1-1_r32"])
    cnn = [Level("L0", SubnetArch.smallest(SupernetSpec()), None, 1, 1)]
    assert bench_library.arch_column(cnn) == ("depth", [" ".join(map(str, cnn[0].arch.d))])
