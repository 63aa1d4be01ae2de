"""The package as a ROS user gets it: ``colcon build`` (a copying install, not a symlink install) into a workspace,
``source install/setup.bash``, then the real ``ros2 launch`` and ``ros2 run`` for about 30 s each, on this test's
own DDS domain with localhost discovery. Every node stays alive, messages flow on every system topic, launch
arguments take effect, and Ctrl-C ends everything with exit code 0, no escalation and no error line.

Needs colcon and the ROS 2 launch tools (a ROS distro, or the project venv after ``scripts/setup_env.sh`` found
them); skips with the reason otherwise. Message counts and shutdown times are printed (``pytest -s``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
# the interpreter's bin folder first, as in an activated venv (ros2, colcon, and `python3` of the node scripts)
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
RUN_S = 30.0
TOPICS = ("performance_report", "classification", "platform_state", "subnet_command", "dvfs_command")

if importlib.util.find_spec("launch_ros") is None or shutil.which("ros2", path=PATH) is None:
    pytest.skip("the ROS 2 launch tools (launch_ros, ros2cli) are not installed: source a ROS 2 distro, or put "
                "them beside the checkout as ../shared/ros2-launch and rerun scripts/setup_env.sh",
                allow_module_level=True)
if shutil.which("colcon", path=PATH) is None:
    pytest.skip("colcon is not installed", allow_module_level=True)

rclpy = pytest.importorskip("rclpy")
from rcl_interfaces.srv import GetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dynofa_ros.msg import (  # noqa: E402
    ClassificationResult,
    DvfsCommand,
    PerformanceReport,
    PerformanceTarget,
    PlatformState,
    SubnetCommand,
)
from dynofa_ros.nodes.image_conv import array_to_image  # noqa: E402
from dynofa_ros.nodes.qos import image_qos, latched, reliable  # noqa: E402

MSG_TYPES = dict(zip(TOPICS, (PerformanceReport, ClassificationResult, PlatformState, SubnetCommand, DvfsCommand)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A colcon workspace with this checkout in src/ (a link), built and installed; returns its root."""
    ws = tmp_path_factory.mktemp("ws")
    (ws / "src").mkdir()
    (ws / "src" / "dynofa_ros").symlink_to(ROOT)
    env = {**os.environ, "PATH": PATH}
    for var in ("AMENT_PREFIX_PATH", "CMAKE_PREFIX_PATH"):  # a pip venv of ROS wheels is the underlay here
        env.setdefault(var, sys.prefix)
    build = subprocess.run(["colcon", "build", "--packages-select", "dynofa_ros", "--event-handlers",
                            "console_direct-", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
                            "-DBUILD_TESTING=OFF"], cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not (ws / "install" / "dynofa_ros" / "lib" / "dynofa_ros" / "perception_node").is_symlink()
    return ws


@pytest.fixture(scope="module")
def user_env(workspace: Path, ros_env: dict[str, str]) -> dict[str, str]:
    """The environment after ``source install/setup.bash`` (nothing of the checkout on PYTHONPATH)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DYNOFA_SHARE_DIR", "DYNOFA_LIBRARY")}
    base["PATH"] = PATH
    dump = subprocess.run(["bash", "-c", f"source {workspace / 'install' / 'setup.bash'} && env -0"], env=base,
                          capture_output=True, check=True, timeout=60).stdout.decode()
    env = dict(line.split("=", 1) for line in dump.split("\0") if "=" in line)
    return {**env, **ros_env, "PYTHONUNBUFFERED": "1"}


def test_the_install_serves_its_own_files(workspace: Path, user_env: dict[str, str]) -> None:
    prefix = workspace / "install" / "dynofa_ros"
    probe = ("import dynofa_ros.nodes.perception_node as m; from dynofa_ros.package_files import share_dir; "
             "from dynofa_ros.supernet.library import default_library_path; "
             "from dynofa_ros.datasets.cifar10 import shipped_test_set; "
             "print(m.__file__, share_dir(), default_library_path(), shipped_test_set(), sep='\\n')")
    out = subprocess.run([sys.executable, "-c", probe], env=user_env, cwd=workspace, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert all(Path(p).is_relative_to(prefix) for p in out), out
    shown = subprocess.run(["ros2", "launch", "dynofa_ros", "dynofa.launch.py", "--show-args"], env=user_env,
                           cwd=workspace, capture_output=True, text=True, check=True, timeout=120).stdout
    assert {"target_latency", "policy", "input_topic", "source_path"} <= set(re.findall(r"'(\w+)':", shown))


class Listener:
    """Counts messages on the system topics (absolute names) on its own thread; asks nodes for parameters."""

    def __init__(self, context, namespaces: tuple[str, ...] = ("",)) -> None:
        """``namespaces``: of the apps, whose classification topics are their own."""
        self.node = rclpy.create_node("install_test_listener", context=context)
        self.counts: Counter[str] = Counter()
        self.apps: set[str] = set()
        self.results: list[ClassificationResult] = []
        for topic, cls in MSG_TYPES.items():
            for ns in namespaces if topic == "classification" else ("",):
                self.node.create_subscription(cls, f"{ns}/{topic}", lambda m, t=topic: self._on(t, m), reliable(100))
        self.executor = rclpy.executors.SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on(self, topic: str, msg) -> None:
        self.counts[topic] += 1
        if topic == "performance_report":
            self.apps.add(msg.app_id)
        elif topic == "classification":
            self.results.append(msg)

    def parameter(self, node: str, name: str):
        client = self.node.create_client(GetParameters, f"{node}/get_parameters")
        try:
            assert client.wait_for_service(timeout_sec=20.0), f"no parameter service of {node}"
            response = client.call(GetParameters.Request(names=[name]), timeout_sec=20.0)
            value = response.values[0]
            return {1: value.bool_value, 2: value.integer_value, 3: value.double_value, 4: value.string_value,
                    9: list(value.string_array_value)}.get(value.type)
        finally:
            self.node.destroy_client(client)

    def topics(self) -> set[str]:
        return {name for name, _ in self.node.get_topic_names_and_types()}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def _run_then_interrupt(cmd: list[str], env: dict[str, str], cwd: Path, listener: Listener, checks,
                        ready=lambda: True, whole_group: bool = True) -> dict:
    """Start ``cmd`` in its own process group, run it for RUN_S (longer, up to RUN_S more, until ``ready()``), run
    ``checks``, then SIGINT it: the whole group as a terminal's Ctrl-C does, or with ``whole_group=False`` only the
    leader, as ``kill -INT``, systemd or ``docker stop`` do (``ros2 launch`` then forwards SIGINT to every node;
    signalling both at once races launch's own ``poll`` against asyncio's child watcher, which then reports an exit
    code of 255 for a node that exited cleanly). Returns exit code, output, seconds to exit, counts."""
    listener.counts.clear()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        end = time.monotonic() + 2 * RUN_S
        time.sleep(RUN_S)
        while not ready() and time.monotonic() < end:
            time.sleep(1.0)
        assert proc.poll() is None, "".join(lines)
        checks()
        counts, ran_s = dict(listener.counts), time.monotonic() - end + 2 * RUN_S
        nodes = psutil.Process(proc.pid).children(recursive=True) or [psutil.Process(proc.pid)]  # launched, or run
        t0 = time.monotonic()
        (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGINT)
        node_exit_s = _exit_times(nodes, t0)
        code = proc.wait(timeout=30)
        seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=10)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left
        os.killpg(proc.pid, 0)
    out = "".join(lines)
    print(f"\n{' '.join(cmd[:4])}: messages in {ran_s:.0f} s {counts}; {len(nodes)} processes, the slowest "
          f"node gone {max(node_exit_s):.2f} s after Ctrl-C, all {seconds:.2f} s, exit {code}")
    return {"code": code, "out": out, "seconds": seconds, "counts": counts, "node_exit_s": node_exit_s}


def _exit_times(processes: list[psutil.Process], t0: float, timeout_s: float = 30.0) -> list[float]:
    """Seconds from ``t0`` until each process is gone."""
    gone: dict[int, float] = {}
    while len(gone) < len(processes) and time.monotonic() - t0 < timeout_s:
        for p in processes:
            if p.pid not in gone and (not p.is_running() or p.status() == psutil.STATUS_ZOMBIE):
                gone[p.pid] = time.monotonic() - t0
        time.sleep(0.01)
    return [gone.get(p.pid, float("inf")) for p in processes]


def _assert_clean(run: dict, processes: int) -> None:
    out = run["out"]
    assert run["code"] == 0, out
    assert "Traceback" not in out and "[ERROR]" not in out and "Failed to publish" not in out, out
    assert "SIGTERM" not in out and "SIGKILL" not in out, out  # launch never escalated
    assert len(re.findall(r"process has finished cleanly", out)) == processes, out
    assert max(run["node_exit_s"]) < 2.0, f"node exit times after Ctrl-C: {run['node_exit_s']}"


def test_ros2_launch_one_app(workspace, user_env, ros_context) -> None:
    listener = Listener(ros_context)
    try:
        def checks():
            assert listener.parameter("/manager", "initial_max_latency") == 1.0  # given as the int 1
            assert listener.parameter("/manager", "policy") == "subnet-only"
            assert "/cam/image" in listener.topics() and "/image" not in listener.topics()
            # targets the manager answers with level commands: a 2 ms latency that only the fastest level comes
            # near, then a top-1 that only the most accurate level reaches
            targets = listener.node.create_publisher(PerformanceTarget, "/performance_target", latched())
            for max_latency, min_accuracy, wanted in ((0.002, 0.0, lambda level: level == 0),
                                                      (1.0, 0.87, lambda level: level == 4)):
                targets.publish(PerformanceTarget(app_id="app0", max_latency=max_latency, min_accuracy=min_accuracy,
                                                  priority=1.0))
                end = time.monotonic() + 15.0
                while not (listener.results and wanted(listener.results[-1].level)) and time.monotonic() < end:
                    time.sleep(0.2)
                assert wanted(listener.results[-1].level), (max_latency, min_accuracy, listener.results[-1].level)
            assert listener.counts["subnet_command"] > 0

        run = _run_then_interrupt(["ros2", "launch", "dynofa_ros", "dynofa.launch.py", "target_latency:=1",
                                   "policy:=subnet-only", "input_topic:=cam/image"], user_env, workspace, listener,
                                  checks, whole_group=False)
    finally:
        listener.close()
    assert all(run["counts"].get(t, 0) > 0 for t in TOPICS if t != "dvfs_command"), run["counts"]  # subnet-only
    _assert_clean(run, processes=4)


def test_ros2_launch_four_apps(workspace, user_env, ros_context) -> None:
    apps = {f"app{i}" for i in range(1, 5)}
    libraries = ["mbv3", "vit", "mbv3", "vit"]  # two CNN apps and two Transformer apps under one manager
    listener = Listener(ros_context, namespaces=tuple(f"/{a}" for a in sorted(apps)))
    try:
        def checks():
            assert listener.parameter("/manager", "initial_max_latency") == 0.02
            assert sorted(listener.parameter("/manager", "app_ids")) == sorted(apps)
            assert listener.parameter("/manager", "libraries") == libraries
            assert [listener.parameter(f"/app{i}/perception", "library") for i in range(1, 5)] == libraries

        run = _run_then_interrupt(["ros2", "launch", "dynofa_ros", "multi_app.launch.py", "apps:=4",
                                   "target_latency:=0.02", f"libraries:={','.join(libraries)}"],
                                  user_env, workspace, listener, checks,
                                  ready=lambda: listener.apps == apps and all(listener.counts[t] for t in TOPICS),
                                  whole_group=False)
    finally:
        listener.close()
    assert all(run["counts"].get(t, 0) > 0 for t in TOPICS), run["counts"]
    assert listener.apps == apps
    _assert_clean(run, processes=10)


def _ros2_run(executable: str, env: dict[str, str]) -> list[str]:
    """``ros2 run dynofa_ros <executable>``; where the ``run`` verb (ros2run) is not installed, the file it would
    run: ``lib/dynofa_ros/<executable>`` of the prefix that ``ros2 pkg prefix`` names, listed by
    ``ros2 pkg executables``."""
    def ros2(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=120)

    if ros2("run", "--help").returncode == 0:
        return ["ros2", "run", "dynofa_ros", executable]
    assert f"dynofa_ros {executable}" in ros2("pkg", "executables", "dynofa_ros").stdout
    return [str(Path(ros2("pkg", "prefix", "dynofa_ros").stdout.strip()) / "lib" / "dynofa_ros" / executable)]


def test_ros2_run_perception_node(workspace, user_env, ros_context) -> None:
    listener = Listener(ros_context)
    pub = listener.node.create_publisher(Image, "/image", image_qos("reliable", 1))
    frame = array_to_image(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8), "rgb8")
    try:
        def checks():
            for _ in range(20):
                pub.publish(frame)
                time.sleep(0.1)
            assert listener.results and listener.results[-1].level == 4  # the shipped library's top level

        run = _run_then_interrupt(_ros2_run("perception_node", user_env), user_env, workspace, listener, checks)
    finally:
        listener.close()
    assert run["code"] == 0 and "Traceback" not in run["out"] and "ERROR" not in run["out"], run["out"]
    assert max(run["node_exit_s"] + [run["seconds"]]) < 2.0
    assert run["counts"]["performance_report"] > 0
