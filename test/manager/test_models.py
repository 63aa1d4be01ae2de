"""Board models for real boards (measured latency) and the mis-calibrated wrapper of the benchmark."""

from __future__ import annotations

import pytest

from dynofa_ros.manager.controller import JointController
from dynofa_ros.manager.harness import MiscalibratedModel
from dynofa_ros.manager.models import AppSpec, LevelPoint, MeasuredModel
from dynofa_ros.manager.policy import make_policy
from dynofa_ros.manager.records import AppTarget
from dynofa_ros.platform.types import DomainInfo

MHZ = 1_000_000
CPU = DomainInfo("cpu0", "cpu", (500 * MHZ, 1000 * MHZ, 2000 * MHZ), (0, 1), writable=True)
GPU = DomainInfo("gpu", "gpu", (300 * MHZ, 600 * MHZ), writable=True)
LEVELS = (LevelPoint(0, "L0", 0.80, 1e6, {"cpu-2t": 0.010, "cpu-1t": 0.016, "gpu-h200": 0.004}),
          LevelPoint(1, "L1", 0.90, 2e6, {"cpu-2t": 0.020, "cpu-1t": 0.030, "gpu-h200": 0.006}))


def test_for_apps_picks_a_profile_of_the_domain_kind_and_scales_with_frequency() -> None:
    model = MeasuredModel.for_apps([AppSpec("a", "cpu0", LEVELS), AppSpec("b", "gpu", LEVELS)], [CPU, GPU])
    assert model.profiles == {"cpu0": "cpu-1t", "gpu": "gpu-h200"}
    assert model.ref_freq_hz == {"cpu0": 2000 * MHZ, "gpu": 600 * MHZ}
    assert model.latency_s(LEVELS[1], "cpu0", 2000 * MHZ, 2) == pytest.approx(0.030)
    assert model.latency_s(LEVELS[1], "cpu0", 500 * MHZ, 2) == pytest.approx(0.120)
    assert model.power_w("gpu", 300 * MHZ, 1.0, 1) == pytest.approx(1.0 / 8)
    assert model.power_w("gpu", 600 * MHZ, 0.5, 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no measured latency for domain 'npu'"):
        model.latency_s(LEVELS[0], "npu", 1, 1)


def test_joint_policy_gets_a_measured_model_without_a_simulator() -> None:
    app = AppSpec("a", "cpu0", LEVELS, rate_hz=10.0)
    policy = make_policy("joint", [app], [CPU])
    assert isinstance(policy, JointController) and isinstance(policy.model, MeasuredModel)
    # L1 is 30 ms at 2 GHz: 60 ms at 1 GHz (x ~1.46 confidence bound = 88 ms) meets 100 ms, 500 MHz does not
    d = policy.update(0.0, [], {"a": AppTarget("a", 0.100, 0.85)}, _state())
    assert d.levels["a"].level == 1 and d.dvfs[0].freq_hz == 1000 * MHZ
    assert d.dvfs[0].online_cores is None  # cores are not tuned with a model that does not know them
    bare = (LevelPoint(0, "L0", 0.8, 1e6, {}), LevelPoint(1, "L1", 0.9, 2e6, {"cpu-1t": 0.01}))
    with pytest.raises(ValueError, match="needs a board model: the levels run on 'cpu0' share no measured"):
        make_policy("dvfs-only", [AppSpec("a", "cpu0", bare)], [CPU])
    with pytest.raises(ValueError, match="busy_w > 0"):
        MeasuredModel({"cpu0": "cpu-1t"}, {}, busy_w=0.0)


def test_miscalibrated_model_scales_predictions(board) -> None:
    wrong = MiscalibratedModel(board, 1.2, 0.8)
    lv = LevelPoint(0, "L0", 0.8, 1e6, {"ref": 0.010})
    assert wrong.latency_s(lv, "gpu", 200 * MHZ, 1) == pytest.approx(1.2 * board.latency_s(lv, "gpu", 200 * MHZ, 1))
    assert wrong.power_w("gpu", 200 * MHZ, 0.5, 1) == pytest.approx(0.8 * board.power_w("gpu", 200 * MHZ, 0.5, 1))


def _state():
    from dynofa_ros.platform.types import DomainState, PlatformState

    dom = DomainState("cpu0", "cpu", CPU.frequencies_hz[-1], CPU.frequencies_hz[0], CPU.frequencies_hz[-1],
                      CPU.frequencies_hz, 0.2, 2)
    return PlatformState(0.0, False, {"cpu0": dom})
