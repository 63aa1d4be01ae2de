"""Node processes: start-up errors give one line and exit code 1; SIGINT/SIGTERM at any moment (importing,
loading the model, streaming) end the process with exit code 0, quickly and without an error or a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from dynofa_ros.nodes.process import EXIT_DEADLINE_S, spin_node  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def own_signal_handlers():
    """spin_node installs SIGINT/SIGTERM handlers: give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.usefixtures("ros_env", "own_signal_handlers")  # spin_node initialises rclpy on the isolated domain
def test_constructor_errors_give_one_line_and_exit_code_1(capsys):
    def PerceptionNode():  # stands for a node class
        raise FileNotFoundError("subnet library file not found: /nowhere/library.json")

    assert spin_node(PerceptionNode, []) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["PerceptionNode: cannot start: subnet library file not found: /nowhere/library.json"]
    assert not rclpy.ok()  # shut down again


@pytest.mark.usefixtures("ros_env", "own_signal_handlers")
def test_other_errors_are_not_hidden():
    def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        spin_node(broken, [])
    assert not rclpy.ok()


def _start(script: str, ros_env: dict[str, str], *params: str) -> subprocess.Popen:
    env = {**os.environ, **ros_env, "PYTHONUNBUFFERED": "1"}
    args = [a for p in params for a in ("-p", p)]
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / script), "--ros-args", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, float, str]:
    """Send ``sig`` twice (as a terminal and launch both do); (exit code, seconds to exit, output)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, time.monotonic() - t0, out


def _wait_for(proc: subprocess.Popen, text: str, timeout_s: float = 60.0) -> str:
    seen = []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        line = proc.stdout.readline()
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} not printed within {timeout_s} s:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_streaming_node_stops_cleanly_on_a_signal(sig, ros_env, tiny_library):
    camera = _start("camera_node", ros_env, "rate_hz:=50.0")
    perception = _start("perception_node", ros_env, f"library:={tiny_library}", "threads:=1")
    try:
        _wait_for(camera, "source cifar10")
        before = _wait_for(perception, "app 'app0'")
        time.sleep(2.0)  # frames flowing
        results = [_stop(p, sig) for p in (perception, camera)]
    finally:
        for p in (camera, perception):
            p.kill() if p.poll() is None else None
    for code, seconds, out in results:
        assert code == 0, before + out
        assert seconds < 2.0, f"took {seconds:.1f} s to exit"
        assert "Traceback" not in out and "ERROR" not in out and "Failed to publish" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("delay_s", [0.3, 2.5], ids=["importing", "loading"])
def test_a_node_stops_cleanly_while_it_starts(delay_s, sig, ros_env):
    proc = _start("perception_node", ros_env)  # the shipped library: about 2-3 s to import and load here
    time.sleep(delay_s)
    code, seconds, out = _stop(proc, sig)
    assert code == 0, out
    assert seconds < 2.0, f"took {seconds:.1f} s to exit"
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out


def test_a_stalled_teardown_is_cut_short_at_the_deadline(ros_env, tmp_path):
    """A node whose teardown hangs in C code that holds the GIL (as DDS teardown now and then does) still ends at the
    deadline after the signal, exit 0."""
    (tmp_path / "stalling_node.py").write_text(
        "import ctypes, sys\n"
        "import rclpy.node\n"
        "from dynofa_ros.nodes.process import spin_node\n"
        "class Stalling(rclpy.node.Node):\n"
        "    def __init__(self):\n"
        "        super().__init__('stalling')\n"
        "        self.create_timer(0.05, lambda: print('stalling node spinning', flush=True))\n"
        "    def destroy_node(self):\n"
        "        ctypes.PyDLL(None).sleep(30)  # C code holding the GIL, as a stalled DDS teardown does\n"
        "def main():\n"
        "    sys.exit(spin_node(Stalling))\n")
    env = {**os.environ, **ros_env, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", "from dynofa_ros.nodes.process import run; run('stalling_node')"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(proc, "stalling node spinning")
    code, seconds, out = _stop(proc, signal.SIGINT)
    assert code == 0 and "Traceback" not in out, out
    assert EXIT_DEADLINE_S <= seconds < EXIT_DEADLINE_S + 1.0
