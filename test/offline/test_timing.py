"""Shared timing loops: synchronisation inside the timed interval, interleaving, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynofa_ros.offline.timing import Timing, cuda_sync, processor_name, time_calls, time_interleaved


def test_time_calls_syncs_around_every_timed_call() -> None:
    events: list[str] = []
    samples = time_calls(lambda: events.append("call"), warmup=2, repeats=3, sync=lambda: events.append("sync"))
    assert samples.shape == (3,) and (samples >= 0).all()
    assert events == ["call", "call"] + ["sync", "call", "sync"] * 3  # warm-up calls are not synchronised
    with pytest.raises(ValueError, match="warmup >= 0 and repeats >= 1"):
        time_calls(lambda: None, warmup=0, repeats=0)


def test_cuda_sync_only_for_cuda_devices() -> None:
    assert cuda_sync("cpu") is None
    assert callable(cuda_sync(torch.device("cuda", 0)))  # built lazily: nothing runs until called


def test_time_interleaved_alternates_callables() -> None:
    order: list[str] = []
    samples = time_interleaved([lambda: order.append("a"), lambda: order.append("b")], threads=1, warmup=1,
                               repeats=4, rounds=2, progress=False)
    assert [len(s) for s in samples] == [4, 4]
    # pass 1: a (1 warm-up + 2), b (1 + 2); pass 2: a (1 + 2), b (1 + 2)
    assert "".join(order) == "aaabbbaaabbb"
    with pytest.raises(ValueError, match="rounds <= repeats"):
        time_interleaved([lambda: None], 1, 0, repeats=2, rounds=3, progress=False)


def test_timing_statistics_and_processor_name() -> None:
    t = Timing.of(np.array([1.0, 2.0, 3.0, 4.0, 100.0]), warmup=2, rounds=2)
    assert (t.p50_s, t.mean_s, t.repeats) == (3.0, 22.0, 5) and 4.0 < t.p90_s < 100.0
    assert "2 interleaved passes" in t.method
    assert processor_name().strip()
