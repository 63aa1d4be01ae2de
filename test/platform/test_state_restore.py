"""Crash-safe control: save before the first write, restore on close, signals, and after kill -9."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dynofa_ros.platform import sysfs
from dynofa_ros.platform.cpufreq import CpufreqPolicy
from dynofa_ros.platform.linux import LinuxPlatform
from dynofa_ros.platform.state import (
    SavedState,
    default_state_file,
    install_signal_handlers,
    load_state,
    pid_alive,
    process_start_time,
    save_state,
    write_step,
)
from dynofa_ros.platform.types import DvfsSetting

REPO = Path(__file__).resolve().parents[2]
CPU = "/sys/devices/system/cpu"
XAVIER_GPU = "/sys/devices/gpu.0/devfreq/17000000.gv11b"
SETTINGS = [DvfsSetting("cpu0", freq_hz=729_600_000), DvfsSetting("gpu", freq_hz=510_000_000),
            DvfsSetting("cpu4", online_cores=0), DvfsSetting("cpu2", freq_hz=1_907_200_000, online_cores=1)]
PRELUDE = """
import os, signal, sys, time
from dynofa_ros.platform import sysfs
from dynofa_ros.platform.cpufreq import CpufreqPolicy
from dynofa_ros.platform.linux import LinuxPlatform
from dynofa_ros.platform.types import DvfsSetting
"""


def run_child(code: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", PRELUDE + code], env=env, capture_output=True, text=True,
                          timeout=60, **kw)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_close_restores_and_removes_state_file(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp4")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    p = LinuxPlatform(t.root, state_file=state_file, use_nvml=False)
    assert not state_file.exists()  # nothing written yet, nothing saved
    assert p.apply(SETTINGS).ok
    saved = load_state(state_file)
    assert saved.pid == os.getpid() and saved.sysfs_root == str(t.root)
    assert write_step(f"{CPU}/cpufreq/policy0/scaling_governor", "schedutil") in saved.steps
    assert t.controlled() != before
    p.close()
    assert t.controlled() == before and not state_file.exists()
    assert p.apply([DvfsSetting("cpu0", freq_hz=729_600_000)]).refused[0][1] == "platform closed"
    p.close()  # idempotent


def test_restore_from_a_signal_mid_apply_stops_the_writes(make_board, tmp_path: Path, monkeypatch) -> None:
    """A signal handler runs restore() in the thread that is inside apply() (the lock is re-entrant)."""
    t = make_board("xavier-nx-jp4")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    p = LinuxPlatform(t.root, state_file=state_file, use_nvml=False)
    set_online = p._cores.set_online

    def signal_after_write(cpu: int, online: bool) -> None:
        set_online(cpu, online)
        p.restore()  # what the handler does when the signal lands right after this write

    monkeypatch.setattr(p._cores, "set_online", signal_after_write)
    result = p.apply([DvfsSetting("cpu2", freq_hz=1_907_200_000, online_cores=1),
                      DvfsSetting("gpu", freq_hz=510_000_000)])
    assert [reason for _, reason in result.refused] == ["platform closed"] * 2
    assert t.controlled() == before and not state_file.exists()


def test_a_write_landing_after_a_signal_restore_is_undone(make_board, tmp_path: Path, monkeypatch) -> None:
    t = make_board("xavier-nx-jp4")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    p = LinuxPlatform(t.root, state_file=state_file, use_nvml=False)
    assert p.apply([DvfsSetting("cpu0", freq_hz=729_600_000)]).ok
    pin = CpufreqPolicy.pin

    def signal_before_write(self: CpufreqPolicy, khz: int) -> None:
        p.restore()  # the signal lands after apply checked it was open, before the write
        pin(self, khz)

    monkeypatch.setattr(CpufreqPolicy, "pin", signal_before_write)
    result = p.apply([DvfsSetting("cpu0", freq_hz=1_190_400_000)])
    assert result.refused[0][1] == "platform closed"
    assert t.controlled() == before and not state_file.exists()


def test_userspace_setspeed_original_is_restored(make_board, tmp_path: Path) -> None:
    t = make_board("laptop-acpi")
    base = f"{CPU}/cpufreq/policy0"
    t.write(f"{base}/scaling_governor", "userspace")
    t.write(f"{base}/scaling_setspeed", 1800000)
    with LinuxPlatform(t.root, state_file=tmp_path / "s.json", use_nvml=False) as p:
        assert p.apply([DvfsSetting("cpu0", freq_hz=800_000_000)]).ok
        assert t.read(f"{base}/scaling_setspeed") == "800000"
    assert (t.read(f"{base}/scaling_governor"), t.read(f"{base}/scaling_setspeed")) == ("userspace", "1800000")


def test_kill_9_then_next_start_restores(make_board, tmp_path: Path, caplog) -> None:
    t = make_board("xavier-nx-jp4")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    child = run_child(f"""
p = LinuxPlatform({str(t.root)!r}, state_file={str(state_file)!r}, use_nvml=False)
r = p.apply({SETTINGS!r})
assert r.ok, r.refused
os.kill(os.getpid(), signal.SIGKILL)
""")
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert state_file.exists() and t.controlled() != before
    assert t.read(f"{CPU}/cpu5/online") == "0" and t.read(f"{XAVIER_GPU}/max_freq") == "510000000"
    with caplog.at_level(logging.WARNING), LinuxPlatform(t.root, state_file=state_file, use_nvml=False) as p:
        assert not p.monitoring_only
        assert t.controlled() == before and not state_file.exists()
        assert any("died without restoring" in r.getMessage() for r in caplog.records)


def test_crash_under_schedutil_restores_governor_first_and_never_setspeed(make_board, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """The original governor was schedutil: the next start puts it back before the limits, and does not
    write scaling_setspeed (only a userspace original has a setspeed worth restoring)."""
    t = make_board("xavier-nx-jp5")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    child = run_child(f"""
p = LinuxPlatform({str(t.root)!r}, state_file={str(state_file)!r}, use_nvml=False)
assert p.apply([DvfsSetting("cpu0", freq_hz=729_600_000)]).ok
os.kill(os.getpid(), signal.SIGKILL)
""")
    assert child.returncode == -signal.SIGKILL, child.stderr
    base = t.path(f"{CPU}/cpufreq/policy0")
    assert t.read(f"{CPU}/cpufreq/policy0/scaling_governor") == "userspace"
    written: list[str] = []
    real_write = sysfs.write_value

    def record(path: Path, value: object) -> None:
        if path.parent == base:  # the cores' online flags are restored before any policy
            written.append(path.name)
        real_write(path, value)

    monkeypatch.setattr(sysfs, "write_value", record)
    with LinuxPlatform(t.root, state_file=state_file, use_nvml=False):
        assert written[0] == "scaling_governor"
        assert sorted(written[1:]) == ["scaling_max_freq", "scaling_min_freq"]
        assert t.controlled() == before and not state_file.exists()
    assert t.read(f"{CPU}/cpufreq/policy0/scaling_setspeed") == "729600"  # left as the dead process wrote it


def test_sigterm_restores_then_dies_by_sigterm(make_board, tmp_path: Path) -> None:
    t = make_board("xavier-nx-jp5")
    before = t.controlled()
    state_file = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE + f"""
p = LinuxPlatform({str(t.root)!r}, state_file={str(state_file)!r}, use_nvml=False)
p.install_signal_handlers()
assert p.apply({SETTINGS!r}).ok
print("ready", flush=True)
time.sleep(60)
"""], env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert t.controlled() != before
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # default action re-raised after restoring
    finally:
        proc.kill()
    assert t.controlled() == before and not state_file.exists()


def test_signal_handler_chains_previous_handler() -> None:
    calls: list[str] = []
    prev = signal.signal(signal.SIGUSR1, lambda s, f: calls.append("previous"))
    try:
        uninstall = install_signal_handlers(lambda: calls.append("restore"), [signal.SIGUSR1])
        signal.raise_signal(signal.SIGUSR1)
        assert calls == ["restore", "previous"]
        uninstall()
        signal.raise_signal(signal.SIGUSR1)
        assert calls == ["restore", "previous", "previous"]
    finally:
        signal.signal(signal.SIGUSR1, prev)


def test_live_owner_or_other_root_blocks_writes(make_board, tmp_path: Path, caplog) -> None:
    t = make_board("laptop-acpi")
    before = t.snapshot()
    state_file = tmp_path / "state.json"
    step = write_step(f"{CPU}/cpufreq/policy0/scaling_governor", "powersave")
    save_state(state_file, SavedState(pid=os.getpid(), sysfs_root=str(t.root), steps=[step],
                                      pid_start=process_start_time(os.getpid())))
    with caplog.at_level(logging.WARNING), LinuxPlatform(t.root, state_file=state_file, use_nvml=False) as p:
        assert p.monitoring_only and f"process {os.getpid()} controls" in caplog.text
        assert p.apply([DvfsSetting("cpu0", freq_hz=800_000_000)]).refused[0][1] == "monitoring-only"
    caplog.clear()
    save_state(state_file, SavedState(pid=dead_pid(), sysfs_root="/elsewhere", steps=[step]))
    with caplog.at_level(logging.WARNING), LinuxPlatform(t.root, state_file=state_file, use_nvml=False) as p:
        assert p.monitoring_only and "belongs to root '/elsewhere'" in caplog.text
    assert t.snapshot() == before and state_file.exists()


def test_restore_writes_only_discovered_attributes(make_board, tmp_path: Path, caplog) -> None:
    t = make_board("laptop-acpi")
    state_file = tmp_path / "state.json"
    steps = [write_step("/sys/class/thermal/thermal_zone0/temp", "1"),  # exists, but not a control attribute
             write_step(f"{CPU}/cpufreq/policy1/scaling_governor", "powersave")]
    save_state(state_file, SavedState(pid=dead_pid(), sysfs_root=str(t.root), steps=steps))
    with caplog.at_level(logging.WARNING), LinuxPlatform(t.root, state_file=state_file, use_nvml=False):
        pass
    assert t.read("/sys/class/thermal/thermal_zone0/temp") == "48000"
    assert t.read(f"{CPU}/cpufreq/policy1/scaling_governor") == "powersave"
    assert any("not an attribute found by discovery" in r.getMessage() for r in caplog.records)
    assert not state_file.exists()


def test_state_file_validation_and_pid_checks(tmp_path: Path, monkeypatch) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a dynofa_ros-platform-state/1 file"):
        load_state(bad)
    bad.write_text(json.dumps({"format": "dynofa_ros-platform-state/1", "pid": 1, "sysfs_root": "/",
                               "steps": [{"op": "rm -rf"}]}))
    with pytest.raises(ValueError, match="steps"):
        load_state(bad)
    assert load_state(tmp_path / "none.json") is None
    assert pid_alive(os.getpid(), process_start_time(os.getpid()))
    assert not pid_alive(os.getpid(), "0")  # same pid, other start time: a reused pid
    assert not pid_alive(dead_pid())
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_state_file() == tmp_path / "dynofa_ros-platform-state.json"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_state_file().parent == Path(tempfile.gettempdir())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_real_permission_error_as_unprivileged_user(make_board) -> None:
    """A real EACCES from the kernel: the child drops to uid 65534 before touching the tree."""
    top = Path(tempfile.mkdtemp(prefix="dynofa-perm-"))
    try:
        top.chmod(0o755)
        t = make_board("xavier-nx-jp4")
        tree = top / "root"
        subprocess.run(["cp", "-a", str(t.root), str(tree)], check=True)
        writable = top / "run"
        writable.mkdir(mode=0o777)
        writable.chmod(0o777)
        before = {p: p.read_text() for p in tree.rglob("*") if p.is_file()}
        child = run_child(f"""
os.setgid(65534); os.setuid(65534)
p = LinuxPlatform({str(tree)!r}, state_file={str(writable / 'state.json')!r}, use_nvml=False)
r1 = p.apply([DvfsSetting("cpu0", freq_hz=729_600_000)])
r2 = p.apply([DvfsSetting("gpu", freq_hz=510_000_000)])
print(r1.refused[0][1]); print(r2.refused[0][1]); print(p.read().power_w["VDD_IN"])
""")
        assert child.returncode == 0, child.stderr
        first, second, power = child.stdout.splitlines()
        assert first.startswith("monitoring-only: permission denied") and second == "monitoring-only"
        assert float(power) == pytest.approx(4.6)
        assert child.stderr.count("switched to monitoring-only") == 1
        assert {p: p.read_text() for p in tree.rglob("*") if p.is_file()} == before
        assert not (writable / "state.json").exists()
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)
