"""Validation of the plain records the ROS node hands to the manager."""

from __future__ import annotations

import math

import pytest

from dynofa_ros.manager.records import AppReport, AppTarget, validate_targets


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_latency_s": math.nan}, "max_latency_s must be finite"),
        ({"max_latency_s": math.inf}, "max_latency_s must be finite"),
        ({"max_latency_s": -0.03}, "max_latency_s must be >"),
        ({"max_latency_s": 0.0}, "max_latency_s must be >"),
        ({"max_latency_s": 0.03, "min_accuracy": 1.5}, "fraction"),
        ({"max_latency_s": 0.03, "min_accuracy": -0.1}, "min_accuracy must be >="),
        ({"max_latency_s": 0.03, "weight": 0.0}, "weight must be >"),
        ({"max_latency_s": 0.03, "energy_budget_j": math.nan}, "energy_budget_j"),
        ({"max_latency_s": "fast"}, "must be a number"),
    ],
)
def test_bad_targets_are_rejected(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        AppTarget("cam", **kwargs)


def test_bad_reports_are_rejected() -> None:
    with pytest.raises(ValueError, match="app_id"):
        AppReport("", 0.0, 0, 0.01)
    with pytest.raises(ValueError, match="latency_s"):
        AppReport("cam", 0.0, 0, math.nan)
    with pytest.raises(ValueError, match="level"):
        AppReport("cam", 0.0, -1, 0.01)


def test_targets_must_name_known_apps() -> None:
    good = AppTarget("cam", 0.03)
    validate_targets({"cam": good}, {"cam"})
    with pytest.raises(ValueError, match="unknown app 'lidar'"):
        validate_targets({"lidar": AppTarget("lidar", 0.03)}, {"cam"})
    with pytest.raises(ValueError, match="carries app_id"):
        validate_targets({"other": good}, {"cam", "other"})
