"""Crash-safe control: save the original DVFS state before the first write, restore it later.

The state file (JSON) holds the owner's pid and an ordered list of restore steps. It is written
atomically before any attribute is changed, removed after a clean restore, and a leftover file
whose owner is dead (kill -9, power cut of the process) is restored by the next start.
Restore order: cores online first (an offline cluster's cpufreq files cannot be written), then
governors, then [min, max] limits, then ``scaling_setspeed``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from dynofa_ros.platform import sysfs

log = logging.getLogger(__name__)

STATE_FORMAT = "dynofa_ros-platform-state/1"
STATE_FILE_NAME = "dynofa_ros-platform-state.json"
STEP_OPS = ("write", "limits")


def default_state_file() -> Path:
    """``$XDG_RUNTIME_DIR/dynofa_ros-platform-state.json``, else the same name in /tmp."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / STATE_FILE_NAME


def write_step(path: str, value: str) -> dict[str, Any]:
    """A restore step writing ``value`` to one attribute (``path`` is the system path)."""
    return {"op": "write", "path": path, "value": value}


def limits_step(min_path: str, max_path: str, lo: int, hi: int) -> dict[str, Any]:
    """A restore step setting a [min, max] pair in a safe order."""
    return {"op": "limits", "min_path": min_path, "max_path": max_path, "min": lo, "max": hi}


def process_start_time(pid: int) -> str | None:
    """The kernel start time of ``pid`` (field 22 of /proc/PID/stat), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """True when ``pid`` runs and (if given) started at ``start_time``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if start_time is not None:
        now = process_start_time(pid)
        return now is None or now == start_time
    return True


@dataclass
class SavedState:
    """The content of a state file."""

    pid: int
    sysfs_root: str
    steps: list[dict[str, Any]]
    pid_start: str | None = None
    created_s: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps({"format": STATE_FORMAT, "pid": self.pid, "pid_start": self.pid_start,
                           "sysfs_root": self.sysfs_root, "created_s": self.created_s, "steps": self.steps},
                          indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "state file") -> SavedState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"{source}: not a {STATE_FORMAT} file")
        steps = data.get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, dict) and s.get("op") in STEP_OPS for s in steps):
            raise ValueError(f"{source}: 'steps' must be a list of {STEP_OPS} steps")
        if not isinstance(data.get("pid"), int) or not isinstance(data.get("sysfs_root"), str):
            raise ValueError(f"{source}: needs an integer 'pid' and a string 'sysfs_root'")
        return cls(pid=data["pid"], sysfs_root=data["sysfs_root"], steps=steps, pid_start=data.get("pid_start"),
                   created_s=float(data.get("created_s", 0.0)))

    def owner_alive(self) -> bool:
        return pid_alive(self.pid, self.pid_start)


def load_state(path: Path) -> SavedState | None:
    """The state file at ``path``, None when there is none; ValueError when it is malformed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return SavedState.from_json(text, str(path))


def save_state(path: Path, state: SavedState) -> None:
    """Write ``state`` atomically (temp file, fsync, rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(state.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def restore_steps(root: Path, steps: Iterable[dict[str, Any]], allowed: set[str]) -> list[str]:
    """Apply restore steps in order, only to attribute paths in ``allowed`` (system paths).

    Returns one message per step that failed or was skipped. A PermissionError stops the restore and
    propagates: without the right to write, nothing else would succeed either.
    """
    problems = []
    for step in steps:
        paths = [step["path"]] if step["op"] == "write" else [step["min_path"], step["max_path"]]
        outside = [p for p in paths if p not in allowed]
        if outside:
            problems.append(f"skipped {outside}: not an attribute found by discovery")
            continue
        try:
            if step["op"] == "write":
                sysfs.write_value(sysfs.under(root, step["path"]), step["value"])
            else:
                sysfs.write_limits(sysfs.under(root, step["min_path"]), sysfs.under(root, step["max_path"]),
                                   int(step["min"]), int(step["max"]))
        except PermissionError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            problems.append(f"restoring {paths} failed: {exc}")
    return problems


def install_signal_handlers(restore: Callable[[], None],
                            signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM)
                            ) -> Callable[[], None]:
    """Run ``restore`` on each signal, then the handler that was there before.

    A previous default action is re-raised (the process still dies by that signal), an ignored signal
    stays ignored, a Python handler (e.g. SIGINT's KeyboardInterrupt, rclpy's) is called. Must be called
    from the main thread. Returns a function that puts the previous handlers back.
    """
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            restore()
        finally:
            prev = previous.get(signum)
            if callable(prev):
                prev(signum, frame)
            elif prev != signal.SIG_IGN:  # SIG_DFL, or None for a handler not set from Python
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

    for sig in signals:
        previous[int(sig)] = signal.signal(sig, handler)

    def uninstall() -> None:
        for sig, prev in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)

    return uninstall
