#!/usr/bin/env python3
"""Camera frames from another process into the perception node: how many reach it.

Per case (frame size, publisher reliability, node set-up): a plain rclpy publisher process with Fast DDS's
defaults, as a camera driver has them, waits until the perception node's image subscription matches it, then sends
``--frames`` frames at ``--rate`` Hz, stamped on the capture schedule. The perception node runs in a process of its
own with default parameters, either as it is now ("new default": ``qos`` auto and the shipped Fast DDS profile,
config/fastdds_large_frames.xml) or as it was ("old default": ``qos`` sensor_data and Fast DDS's defaults).
Reached = processed + dropped (replaced by a newer frame before inference), read from the node's /diagnostics; lost
= the node's own estimate from the gaps in the stamps. Goal: >= 95 % of the frames sent reach the node.

    python benchmarks/bench_frames.py     # every case -> docs/bench/frames.md; exit 1 when a new-default case FAILs
    python benchmarks/bench_frames.py publish --width 640 --height 480 --reliability best_effort   # one publisher

The test test/nodes/test_frames_between_processes.py runs :class:`NodeUnderTest` with a small library.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dynofa_ros.nodes.system import DDS_CHOICES  # noqa: E402

GOAL = 0.95
PERCEPTION = "dynofa perception: app0"  # the perception node's diagnostic status name (app_id app0)


@dataclass(frozen=True)
class Case:
    """One publisher: frame size, encoding and reliability."""

    width: int
    height: int
    reliability: str  # reliable | best_effort
    encoding: str = "rgb8"

    @property
    def name(self) -> str:
        return f"{self.width}×{self.height} {self.encoding}, {self.reliability.replace('_', '-')}"


@dataclass(frozen=True)
class Setup:
    """How the perception node process is started: extra parameters and environment."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


# the old default: image QoS sensor_data, and Fast DDS's builtin transports (a user's choice, so no shipped profile)
SETUPS = (Setup("old default", {"qos": "sensor_data"}, {"FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT"}),
          Setup("new default"))
CASES = tuple(Case(w, h, r) for w, h in ((640, 480), (1280, 720)) for r in ("reliable", "best_effort"))


@dataclass
class Result:
    """Frames of one case: sent by the publisher, and the node's counters over the case."""

    setup: str
    case: Case
    sent: int
    processed: int
    dropped: int
    lost: int
    image_qos: str

    @property
    def reached(self) -> int:
        return self.processed + self.dropped

    @property
    def share(self) -> float:
        return self.reached / self.sent if self.sent else 0.0

    @property
    def passed(self) -> bool:
        return self.share >= GOAL


def without_dds_profile(env: dict[str, str]) -> dict[str, str]:
    """``env`` without a Fast DDS profile or transport choice: a process with Fast DDS's defaults."""
    return {k: v for k, v in env.items() if k not in DDS_CHOICES}


class NodeUnderTest:
    """A perception node process and a node in this process that reads its /diagnostics and runs publishers."""

    def __init__(self, context, env: dict[str, str], setup: Setup, params: dict[str, Any], log: Path) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor

        from dynofa_ros.nodes.qos import reliable

        self.env = {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)}
        self.setup = setup
        self.values: dict[str, str] = {}
        self.received = 0
        self.node = rclpy.create_node("frames_bench", context=context)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, reliable())
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        ros_args = [a for k, v in {**params, **setup.params}.items() for a in ("-p", f"{k}:={v}")]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dynofa_ros.nodes.perception_node", "--ros-args", *ros_args],
                env={**without_dds_profile(self.env), **setup.env}, stdout=out, stderr=subprocess.STDOUT)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == PERCEPTION:
                self.values = {kv.key: kv.value for kv in status.values}
                self.received += 1

    def _spin_until(self, condition, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not condition():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the perception node exited ({self.proc.returncode}):\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def wait_active(self, timeout_s: float = 120.0) -> None:
        """Until the node reports an active image subscription (it loads the library first)."""
        if not self._spin_until(lambda: self.values.get("image_qos"), timeout_s):
            raise RuntimeError(f"the perception node did not become active in {timeout_s:.0f} s")

    def counters(self, timeout_s: float = 15.0) -> tuple[int, int, int]:
        """(processed, dropped, lost) once two diagnostics in a row agree (the frame in flight is done)."""
        last = None
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            n = self.received
            self._spin_until(lambda n=n: self.received > n, 3.0)
            now = tuple(int(self.values[k]) for k in ("frames_processed", "frames_dropped", "frames_lost"))
            if now == last:
                return now
            last = now
        raise RuntimeError(f"the perception node's counters did not settle in {timeout_s:.0f} s")

    def measure(self, case: Case, frames: int, rate_hz: float) -> Result:
        """Run one publisher process (Fast DDS defaults) for ``case``; the node's counters over it."""
        before = self.counters()
        cmd = [sys.executable, str(Path(__file__).resolve()), "publish", "--width", str(case.width),
               "--height", str(case.height), "--encoding", case.encoding, "--reliability", case.reliability,
               "--frames", str(frames), "--rate", str(rate_hz)]
        with tempfile.TemporaryFile() as out:
            pub = subprocess.Popen(cmd, env=without_dds_profile(self.env), stdout=out, stderr=subprocess.STDOUT)
            self._spin_until(lambda: pub.poll() is not None, 120.0 + frames / rate_hz)
            if pub.poll() is None:
                pub.kill()
            out.seek(0)
            text = out.read().decode(errors="replace")
        if pub.returncode != 0:
            raise RuntimeError(f"the publisher failed ({pub.returncode}):\n{text[-3000:]}")
        sent = json.loads(text.strip().splitlines()[-1])["sent"]
        after = self.counters()
        processed, dropped, lost = (a - b for a, b in zip(after, before))
        return Result(self.setup.name, case, sent, processed, dropped, lost, self.values["image_qos"])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()


def publish(argv: list[str]) -> int:
    """The publisher process: wait for a matched subscription, send the frames, print ``{"sent": n}``."""
    p = argparse.ArgumentParser(prog="bench_frames.py publish")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    p.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--depth", type=int, default=1, help="publisher history depth (keep last)")
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--rate", type=float, default=30.0, help="[Hz]")
    p.add_argument("--settle-s", type=float, default=1.5,
                   help="wait after the first match (a node with qos auto may re-subscribe to match the publisher)")
    p.add_argument("--wait-s", type=float, default=60.0, help="give up when no subscription matches this long")
    a = p.parse_args(argv)
    import numpy as np
    import rclpy
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dynofa_ros.nodes.image_conv import array_to_image

    rclpy.init()
    node = rclpy.create_node("frame_publisher")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=a.depth, durability=DurabilityPolicy.VOLATILE,
                     reliability=ReliabilityPolicy.RELIABLE if a.reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(Image, "image", qos)
    try:
        end = time.monotonic() + a.wait_s
        while pub.get_subscription_count() == 0:
            if time.monotonic() > end:
                print(f"no subscription matched in {a.wait_s:g} s", file=sys.stderr)
                return 2
            time.sleep(0.05)
        time.sleep(a.settle_s)
        msg = array_to_image(np.random.default_rng(0).integers(0, 256, (a.height, a.width, 3), dtype=np.uint8),
                             a.encoding)
        start_ns, start = node.get_clock().now().nanoseconds, time.monotonic()
        for i in range(a.frames):
            time.sleep(max(0.0, start + i / a.rate - time.monotonic()))
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(start_ns + round(i / a.rate * 1e9), 10**9)
            pub.publish(msg)
        time.sleep(1.0)  # a reliable publisher may still be repairing the last frames
        print(json.dumps({"sent": a.frames}), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def host_settings() -> str:
    """The kernel's socket buffer limits (they cap what the Fast DDS profile asks for)."""
    out = []
    for name in ("rmem_max", "wmem_max", "rmem_default"):
        try:
            out.append(f"net.core.{name} = {int(Path(f'/proc/sys/net/core/{name}').read_text()):,}")
        except (OSError, ValueError):
            out.append(f"net.core.{name} unknown")
    return ", ".join(out)


def fragment(results: list[Result], args: argparse.Namespace, library: str) -> tuple[list[str], list[str]]:
    """The Markdown fragment's lines and its verdict lines."""
    lines = [f"## Camera frames between processes ({dt.date.today().isoformat()})", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), Python "
             f"{platform.python_version()}, Fast DDS (rmw_fastrtps_cpp), discovery localhost only, {host_settings()}. "
             f"Per case a plain rclpy publisher process with Fast DDS's defaults (depth 1) sends {args.frames} frames "
             f"at {args.rate:g} Hz once the perception node's subscription matches it; the perception node (its own "
             f"process, default parameters, {library}) runs as before (old default: `qos` sensor_data, Fast DDS "
             "defaults) and as now (new default: `qos` auto, the shipped profile `config/fastdds_large_frames.xml`). "
             "Reached = processed + dropped (replaced by a newer frame); lost = the node's estimate from the gaps in "
             "the stamps; QoS = the node's image subscription at the end.", "",
             "| node | frames, publisher | sent | reached | processed | dropped | lost (est.) | reached share | QoS | "
             "goal ≥ 95 % |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.setup} | {r.case.name} | {r.sent} | {r.reached} | {r.processed} | {r.dropped} | {r.lost} "
                     f"| {r.share:.1%} | {r.image_qos} | {'PASS' if r.passed else 'FAIL'} |")
    new = [r for r in results if r.setup == SETUPS[-1].name]
    verdicts = [f"- {'PASS' if r.passed else 'FAIL'}: new default, {r.case.name}: {r.share:.1%} of the frames reach "
                f"the node (goal ≥ {GOAL:.0%})" for r in new]
    return lines, verdicts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["publish"]:
        return publish(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=240, help="frames per case")
    p.add_argument("--rate", type=float, default=30.0, help="publisher rate [Hz]")
    p.add_argument("--library", default="", help="subnet library ('' = the shipped one)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "frames.md")
    args = p.parse_args(argv)
    import rclpy

    domain = 100 + os.getpid() % 50
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    os.environ.update(env)
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain)
    params = {"library": args.library} if args.library else {}
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for setup in SETUPS:
                node = NodeUnderTest(context, env, setup, params, Path(tmp) / "perception.log")
                try:
                    node.wait_active()
                    for case in CASES:
                        results.append(node.measure(case, args.frames, args.rate))
                        r = results[-1]
                        print(f"{setup.name:11s} {case.name:32s} sent {r.sent} reached {r.reached} "
                              f"({r.share:.1%}) processed {r.processed} dropped {r.dropped} lost {r.lost} "
                              f"QoS {r.image_qos}", flush=True)
                finally:
                    node.close()
    finally:
        rclpy.try_shutdown(context=context)
    lines, verdicts = fragment(results, args, f"`{args.library}`" if args.library else "shipped library")
    text = "\n".join([*lines, "", *verdicts, ""])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 1 if any(v.startswith("- FAIL") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
