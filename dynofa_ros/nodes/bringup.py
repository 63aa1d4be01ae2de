"""In-process bring-up and demo: every node of launch/dynofa.launch.py (or multi_app.launch.py with
``--apps 2``) on one SingleThreadedExecutor in this process, plus an evaluator that writes the run report.
Inference runs on each perception node's own worker thread; rclpy's MultiThreadedExecutor spent about half
a core re-building wait sets here, which starved inference (frames of 1-3 s on this 2-core machine).

``make demo`` runs it on the shipped CIFAR-10 library, the SIMULATED Xavier NX and the CIFAR-10 camera:
a latency target, a target change and a competing CPU load (a busy-loop subprocess) part-way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from dynofa_ros.manager.demo_targets import DEFAULT_SLACK, DemoTarget, demo_targets
from dynofa_ros.msg import PerformanceTarget
from dynofa_ros.nodes.evaluator_node import EvaluatorNode
from dynofa_ros.nodes.process import handle_signals
from dynofa_ros.nodes.qos import latched
from dynofa_ros.nodes.system import (
    MAX_APPS,
    NODES,
    NodeEntry,
    app_ids,
    load_parameters,
    parameter_file,
    shared_remappings,
    use_dds_profile,
)
from dynofa_ros.report.run_report import SETTLE_S, new_run_dir
from dynofa_ros.supernet.library import SHIPPED_MODELS, library_path, shipped_library_path

LEVEL_TIMING_RUNS = 20  # frames per level timed at start-up
MISS_GOAL = 0.05  # the demo's goal: at most this share of frames over the target once settled after an event
BANNER = "SIMULATED BOARD: Jetson Xavier NX model (frequencies, power, temperatures are simulated; " \
         "inference is real, on this CPU)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dynofa_ros.nodes.bringup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="run time [s] (10 for a smoke test)")
    p.add_argument("--apps", type=int, choices=range(1, MAX_APPS + 1), default=1, metavar=f"1..{MAX_APPS}",
                   help="1: config/dynofa.yaml; more: config/multi_app.yaml, apps in namespaces app1..appN")
    p.add_argument("--config", type=Path, help="parameter YAML (default config/dynofa.yaml or multi_app.yaml)")
    p.add_argument("--library", default="", help="subnet library JSON of every app ('' = shipped default)")
    p.add_argument("--model", nargs="+", choices=tuple(SHIPPED_MODELS), default=None,
                   help="shipped model instead of --library: one for every app, or one per app "
                   "(--apps 2 --model mbv3 vit: a CNN app and a Transformer app)")
    p.add_argument("--platform", choices=("sim", "real"), default=None, help="board (default from the YAML)")
    p.add_argument("--policy", default=None, help="manager policy (default from the YAML)")
    p.add_argument("--source", default=None, help="camera source: cifar10 | folder | video | camera")
    p.add_argument("--path", default="", help="image folder / video file for --source folder/video; CIFAR-10 data "
                   "for --source cifar10 (default: the shipped test images)")
    p.add_argument("--rate", type=float, default=None, help="camera rate [Hz]")
    p.add_argument("--target-ms", type=float, default=None,
                   help="initial latency target [ms] (default: slack x the most accurate level's frame time here)")
    p.add_argument("--min-accuracy", type=float, default=None,
                   help="initial minimum expected top-1 [0..1] (default: the second most accurate level's)")
    p.add_argument("--target-change-ms", type=float, default=None,
                   help="target after the change [ms] (default: slack x the fastest level's frame time here)")
    p.add_argument("--change-min-accuracy", type=float, default=None,
                   help="minimum top-1 after the change (default: the fastest level's)")
    p.add_argument("--slack", type=float, default=DEFAULT_SLACK,
                   help="derived targets: this many times a level's frame time measured at start-up")
    p.add_argument("--change-at", type=float, default=0.35, help="target change, fraction of the duration")
    p.add_argument("--load-at", type=float, default=0.6, help="competing CPU load start, fraction of the duration")
    p.add_argument("--no-load", action="store_true", help="no competing CPU load")
    p.add_argument("--mcap", action="store_true", help="record every topic to <run dir>/run.mcap")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where run reports go")
    return p


def node_plan(args: argparse.Namespace) -> list[tuple[NodeEntry, str, dict[str, Any]]]:
    """(entry, namespace, parameters) of every node, from the YAML with the command-line overrides."""
    config = args.config or parameter_file(args.apps > 1)
    params = load_parameters(config)
    libraries = app_libraries(args, params.get("perception", {}).get("library", ""))
    overrides = {
        "camera": {"source": args.source, "path": args.path or None, "rate_hz": args.rate},
        "perception": {},
        "platform": {"platform": args.platform},
        "manager": {"policy": args.policy, "libraries": libraries,
                    "app_ids": app_ids(args.apps) if args.apps > 1 else None},
    }
    shared = params.get("/**", {})  # the ROS wildcard block: parameters every node gets (e.g. board_config)
    plan = []
    for entry in NODES:
        p = {**shared, **params.get(entry.name, {}),
             **{k: v for k, v in overrides[entry.name].items() if v is not None}}
        if entry.per_app and args.apps > 1:
            for i, app in enumerate(app_ids(args.apps), start=1):
                extra = {"app_id": app, "library": libraries[i - 1]} if entry.name == "perception" else {"seed": i}
                plan.append((entry, app, {**p, **extra}))
        else:
            plan.append((entry, "", {**p, "library": libraries[0]} if entry.name == "perception" else p))
    return plan


def create_node(entry: NodeEntry, namespace: str, params: dict[str, Any], context) -> Node:
    """Instantiate ``entry``'s node class in this process (namespace → shared topics remapped absolute)."""
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    cli = ["--ros-args"] + [a for src, dst in shared_remappings() for a in ("-r", f"{src}:={dst}")] if namespace else []
    return cls(entry.name, namespace=namespace or "", context=context, cli_args=cli or None,
               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


class Demo:
    """The running system: nodes, executor thread, target publisher, competing load."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        use_dds_profile(os.environ)  # as in the launch files' processes: frames reach readers elsewhere (rviz, bags)
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)  # see process.py
        self.nodes: dict[str, Node] = {}
        self.app_ids: list[str] = []
        for entry, ns, params in node_plan(args):
            key = f"{ns}/{entry.name}" if ns else entry.name
            self.nodes[key] = create_node(entry, ns, params, self.context)
            if entry.name == "perception":
                self.app_ids.append(params["app_id"])
        prefixes = [f"/{app}/" for app in app_ids(args.apps)] if args.apps > 1 else [""]
        self.run_dir = new_run_dir(args.runs_dir)
        self.evaluator = EvaluatorNode(
            context=self.context,
            parameter_overrides=[
                Parameter("result_topics", value=[f"{p}classification" for p in prefixes]),
                Parameter("label_topics", value=[f"{p}image/label" for p in prefixes]),
                Parameter("mcap", value=str(self.run_dir / "run.mcap") if args.mcap else "")])
        self.driver = rclpy.create_node("demo_driver", context=self.context)
        self.pub_target = self.driver.create_publisher(PerformanceTarget, "performance_target", latched())
        self.executor = SingleThreadedExecutor(context=self.context)
        for node in [*self.nodes.values(), self.evaluator, self.driver]:
            self.executor.add_node(node)
        self._stop = threading.Event()
        self._spin = threading.Thread(target=self._spin_loop, name="executor", daemon=True)
        self.load: subprocess.Popen | None = None
        self.level_times_s: tuple[float, ...] = ()
        self.targets: dict[str, tuple[DemoTarget, DemoTarget]] = {}  # per app: initial, after the change
        self.own_times_s: dict[int, float] = {}

    def _first(self, name: str) -> Node:
        """The first app's node called ``name``."""
        return next(node for key, node in self.nodes.items() if key.rsplit("/", 1)[-1] == name)

    def derive_targets(self) -> str:
        """Time every level of each app's network on this machine (the camera's next frame, at the camera's rate)
        and fill each app's targets that the command line left open from those times (:func:`demo_targets`);
        lines that say what was done. Apps of one library share its timing."""
        args, lines, timed = self.args, [], {}
        for app, (net, camera) in self._perception_and_camera().items():
            library = str(self.nodes[self._key(app, "perception")].library_path)
            if library not in timed:
                times = net.time_levels(camera.sample_frame(), "rgb8", LEVEL_TIMING_RUNS, 1.0 / camera.rate_hz)
                start, change = demo_targets(times, [lv.top1 for lv in net.levels], args.slack)
                start = start.given(args.target_ms, args.min_accuracy)
                change = change.given(args.target_change_ms, args.change_min_accuracy)
                timed[library] = times, (start, change)
                lines.append(f"{Path(library).parent.name}: level frame times here at {camera.rate_hz:g} Hz, "
                             f"L0..L{len(times) - 1}: {' '.join(f'{t * 1e3:.2f}' for t in times)} ms; targets: "
                             f"{start} ({start.why}), then {change} ({change.why})")
            times, self.targets[app] = timed[library]
            if not self.level_times_s:
                self.level_times_s = times  # the first app's: bring-up overhead
        return "\n".join(lines)

    def _key(self, app: str, name: str) -> str:
        return f"{app}/{name}" if self.args.apps > 1 else name

    def _perception_and_camera(self) -> dict[str, tuple[Any, Node]]:
        """Per app: its perception node's network and its camera node."""
        return {app: (self.nodes[self._key(app, "perception")].net, self.nodes[self._key(app, "camera")])
                for app in self.app_ids}

    def note_own_times(self) -> None:
        """The first app's median frame time per level that ran as many frames as were timed alone, before the
        simulated slowdown (see :func:`bringup_overhead`)."""
        own = self._first("perception").own_times_s
        self.own_times_s = {level: statistics.median(times) for level, times in list(own.items())
                            if len(times) >= LEVEL_TIMING_RUNS}

    def _spin_loop(self) -> None:
        # our own loop instead of executor.spin(): stopping it first lets shutdown() finish the callbacks
        # already handed to the thread pool while every node still exists
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.1)

    def set_targets(self, phase: int) -> None:
        """Publish every app's targets of ``phase`` (0: the initial ones, 1: after the change)."""
        for app_id in self.app_ids:
            target = self.targets[app_id][phase]
            self.pub_target.publish(PerformanceTarget(app_id=app_id, max_latency=target.max_latency_s,
                                                      min_accuracy=target.min_accuracy, priority=0.0))
        distinct = dict.fromkeys(str(self.targets[a][phase]) for a in self.app_ids)
        self.evaluator.event("target " + "; ".join(distinct))

    def start_load(self) -> None:
        self.load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        self.evaluator.event("CPU load on")

    def stop_load(self) -> None:
        if self.load is not None and self.load.poll() is None:
            self.load.terminate()
            self.load.wait(timeout=5)
            self.evaluator.event("CPU load off")

    def status(self) -> str:
        parts = [f"t={self.evaluator.now():5.1f}s"]
        for app_id in self.app_ids:
            s = self.evaluator.log.apps.get(app_id)
            if s and s.t:
                recent = s.latency_s[-15:]
                acc = self.evaluator.matcher.accuracy(app_id)
                parts.append(f"{app_id}: L{s.level[-1]} {1e3 * sum(recent) / len(recent):5.1f} ms "
                             f"acc {acc:5.1%} drop {s.dropped} lost {s.lost}")
        platform = self.nodes.get("platform")
        state = getattr(platform, "last_state", None)
        if state is not None:
            dom = getattr(platform, "app_domain", "")
            if dom in state.domains:
                parts.append(f"{dom} {state.domains[dom].cur_hz / 1e6:6.1f} MHz")
            if "VDD_IN" in state.power_w:
                parts.append(f"VDD_IN {state.power_w['VDD_IN']:.2f} W")
        if state is not None and state.simulated:
            parts.append("[SIMULATED board]")
        return " | ".join(parts)

    def run(self) -> dict[str, Any]:
        args = self.args
        tty = sys.stdout.isatty()
        print(self.derive_targets(), flush=True)
        self._spin.start()
        self.set_targets(0)
        changed = loaded = False
        last_print = 0.0
        start = time.monotonic()
        try:
            while (elapsed := time.monotonic() - start) < args.duration:
                if not changed and elapsed >= args.change_at * args.duration:
                    changed = True
                    self.set_targets(1)
                if not args.no_load and not loaded and elapsed >= args.load_at * args.duration:
                    loaded = True
                    self.note_own_times()
                    self.start_load()
                if tty:
                    print("\r" + self.status()[:200].ljust(120), end="", flush=True)
                elif elapsed - last_print >= 5.0:
                    last_print = elapsed
                    print(self.status(), flush=True)
                time.sleep(0.25)
        except KeyboardInterrupt:
            print("\ninterrupted: writing the report", flush=True)
        finally:
            self.stop_load()
        if not loaded:
            self.note_own_times()
        if tty:
            print()
        self._stop.set()
        self._spin.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=5.0)
        return self.evaluator.write_report(self.run_dir, {
            "apps_config": args.apps, "policy": self._policy(),
            "libraries": {app: str(self.nodes[self._key(app, "perception")].library_path) for app in self.app_ids},
            "bringup_overhead": bringup_overhead(self.level_times_s, self.own_times_s)})

    def _policy(self) -> str:
        manager = self.nodes.get("manager")
        return getattr(manager, "active_policy", "") or getattr(manager, "policy_name", "")

    def close(self) -> None:
        self.stop_load()
        for node in [*self.nodes.values(), self.evaluator, self.driver]:
            node.destroy_node()  # the platform node restores the board here
        rclpy.try_shutdown(context=self.context)


def app_libraries(args: argparse.Namespace, configured: str = "") -> list[str]:
    """Each app's library path: ``--model`` (one for all apps, or one per app), else ``--library``, else the
    parameter file's (``configured``), else the default, for all. ValueError for a ``--model`` list of another
    length; FileNotFoundError for a library that is not there."""
    if args.model is None:
        return [str(library_path(args.library or configured))] * args.apps
    if len(args.model) not in (1, args.apps):
        raise ValueError(f"--model names {len(args.model)} models for {args.apps} apps: give one, or one per app")
    if args.library:
        raise ValueError("give --library or --model, not both")
    return [str(shipped_library_path(m)) for m in (args.model * args.apps if len(args.model) == 1 else args.model)]


def bringup_overhead(bare_s: Sequence[float], demo_s: dict[int, float]) -> list[dict[str, float]]:
    """Per level that ran before the competing load: its median frame time in the demo (before the simulated
    slowdown) against the same work timed alone at start-up, at the camera's rate."""
    return [{"level": level, "bare_ms": bare_s[level] * 1e3, "demo_ms": demo_s[level] * 1e3,
             "ratio": demo_s[level] / bare_s[level]} for level in sorted(demo_s) if level < len(bare_s)]


def print_summary(summary: dict[str, Any], run_dir: Path) -> None:
    """Final table (rich) and the report path."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="dynofa_ros run" + (" (SIMULATED board)" if summary.get("simulated") else ""))
    for col in ("app", "frames", "dropped", "lost", "p50 ms", "p90 ms", "target miss", f"miss >{SETTLE_S:g} s after "
                "events", "live top-1", "switches"):
        table.add_column(col, justify="right")
    for app_id, a in summary["apps"].items():
        lat = a["latency_s"]
        miss, settled, acc = a["target_miss_rate"], a["target_miss_rate_settled"], a["live_accuracy"]
        table.add_row(app_id, str(a["frames_processed"]), str(a["frames_dropped"]), str(a["frames_lost"]),
                      f"{lat.get('p50', float('nan')) * 1e3:.1f}", f"{lat.get('p90', float('nan')) * 1e3:.1f}",
                      "-" if miss is None else f"{miss:.1%}",
                      "-" if settled is None else f"{settled:.1%} ({'within' if settled <= MISS_GOAL else 'over'} "
                      f"{MISS_GOAL:.0%})", "-" if acc is None else f"{acc:.1%}",
                      str(a["level_switches"]))
    console.print(table)
    for app_id, a in summary["apps"].items():
        if a.get("frames_infeasible"):
            causes = sorted({i["cause"] for i in a["infeasible"]})
            console.print(f"[bold yellow]{app_id}: {a['frames_infeasible']} frames while the manager reported the "
                          f"target infeasible ({'; '.join(causes)}), {a['infeasible_misses']} of them over it: not in "
                          "the miss columns[/]")
        if a["unmanaged"]:
            console.print(f"[bold yellow]{app_id} ran unmanaged for {a['unmanaged_s']:.1f} s (the manager was absent "
                          f"{len(a['unmanaged'])}x)[/]")
    if summary.get("bringup_overhead"):
        console.print("frame time in the demo vs alone at the camera's rate (before the load, without the simulated "
                      "slowdown): " + ", ".join(
            f"L{o['level']} {o['demo_ms']:.2f}/{o['bare_ms']:.2f} ms ({o['ratio'] - 1:+.0%})"
            for o in summary["bringup_overhead"]))
    if summary.get("board_energy_j") is not None:
        console.print(f"board energy: {summary['board_energy_j']:.1f} J ({summary['board']})")
    if summary.get("simulated"):
        console.print(f"[bold yellow]{BANNER}[/]")
    console.print(f"policy: {summary.get('policy')}; report: {run_dir}/summary.json + {', '.join(summary['plots'])}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handle_signals()  # Ctrl-C or SIGTERM: one KeyboardInterrupt, the report is still written
    if args.duration <= 0:
        print("--duration must be > 0", file=sys.stderr)
        return 2
    try:
        demo = Demo(args)
    except KeyboardInterrupt:
        print("interrupted while starting", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    if demo.nodes["platform"].platform.simulated:
        print(BANNER, flush=True)
    try:
        summary = demo.run()
    finally:
        demo.close()
    print_summary(summary, demo.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
