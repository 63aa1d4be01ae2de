"""Managed or not: the manager's heartbeat, its absence and its return (plain Python)."""

from __future__ import annotations

import pytest

from dynofa_ros.manager.presence import ManagerWatch


def test_silence_longer_than_the_timeout_makes_the_app_unmanaged_once():
    watch = ManagerWatch(1.0)
    assert not watch.check(100.0)  # silence counts from the first check: start-up is no absence
    assert not watch.check(101.0) and watch.managed
    assert watch.check(101.5) and not watch.managed and watch.silent_for(101.5) == pytest.approx(1.5)
    assert not watch.check(103.0) and not watch.managed  # reported once
    assert watch.heard(103.2) and watch.managed  # back
    assert not watch.heard(103.7) and not watch.check(104.5)
    assert watch.check(104.8)


def test_heartbeats_keep_it_managed_and_zero_turns_the_watch_off():
    watch = ManagerWatch(0.5)
    for t in range(20):
        watch.heard(t * 0.4)
        assert not watch.check(t * 0.4 + 0.3)
    off = ManagerWatch(0.0)
    off.check(0.0)
    assert not off.check(1e6) and off.managed
    with pytest.raises(ValueError, match="manager timeout"):
        ManagerWatch(-1.0)
