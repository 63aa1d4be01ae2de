"""The pipeline benchmark's goals (benchmarks/bench_pipeline.py): each run is held to the time and memory goals and
to serving the dataset's labels; the level count is a goal of the shared-classifier run only."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pipeline.py"
spec = importlib.util.spec_from_file_location("bench_pipeline", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # its dataclass looks its module up there
spec.loader.exec_module(bench)


def run(classifier: str, levels: int = 6, wall_min: float = 20.0, peak_gb: float = 6.0,
        names_ok: bool = True) -> bench.PipelineRun:
    return bench.PipelineRun(classifier, "search 14.0 min", wall_min * 60, peak_gb,
                             [f"L{i}: top-1 {40 + i:.2f} %" for i in range(levels)], names_ok)


@pytest.mark.parametrize("classifier", ["own", "shared"])
def test_a_run_within_every_goal_passes(classifier: str) -> None:
    lines, ok = bench.report(run(classifier), 7)
    assert ok
    assert sum(line.startswith("  - L") for line in lines) == 6


@pytest.mark.parametrize("change", [{"wall_min": 45.5}, {"peak_gb": 8.2}, {"names_ok": False}])
@pytest.mark.parametrize("classifier", ["own", "shared"])
def test_time_memory_and_labels_are_goals_of_every_run(classifier: str, change: dict) -> None:
    assert not bench.report(run(classifier, **change), 7)[1]


def test_the_level_count_is_a_goal_with_the_shared_classifier_only() -> None:
    assert not bench.report(run("shared", levels=bench.MIN_LEVELS - 1), 7)[1]
    assert bench.report(run("own", levels=2), 7)[1]
