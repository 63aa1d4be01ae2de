"""A node's process: SIGINT/SIGTERM handled from its first line, the node built and spun, a quiet exit 0.

``ros2 launch`` stops its nodes with SIGINT (SIGTERM 5 s later), and a terminal's Ctrl-C reaches every
process of the group too. Only the first SIGINT or SIGTERM counts. While the node spins it ends the spin loop
(within SPIN_PERIOD_S); the node is then destroyed (worker threads joined, the board restored) before the ROS
context shuts down, so nothing publishes on a dead context. While a node process is still starting (importing
torch, loading the model) there is nothing to tear down and it ends at once. Elsewhere (the in-process demo)
the signal raises KeyboardInterrupt. The signal never raises inside rclpy's executor: pybind turns an
exception raised there into a RuntimeError. rclpy's own handlers are not installed: they shut the context
down at once, under threads that are still publishing. Only this module's standard-library imports run before
the handlers are in place, so a script calls :func:`run` with the name of its node module.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

SPIN_PERIOD_S = 0.1  # the executor wakes at least this often, so a signal is acted on within it
EXIT_DEADLINE_S = 1.5  # a node process ends this long after the first signal at the latest
_signals = 0
_deadline = False  # set by run(): a node process (not a test that calls spin_node) ends by the deadline
_spinning = False  # set by spin_node while its spin loop runs
_stop = threading.Event()  # the spin loop's end, set by the first signal
CLOCK_MONOTONIC, SIGEV_THREAD = 1, 2  # Linux


def _on_signal(signum: int, frame: Any) -> None:
    global _signals
    _signals += 1
    if _signals > 1:
        return
    if _spinning:
        _stop.set()
    elif _deadline:
        _end(0)  # a node process still starting: nothing to tear down
    else:
        raise KeyboardInterrupt
    if _deadline:
        _arm_exit_deadline(EXIT_DEADLINE_S)


class _Timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


class _SigevThread(ctypes.Structure):
    _fields_ = [("function", ctypes.c_void_p), ("attribute", ctypes.c_void_p)]


class _Sigevent(ctypes.Structure):  # glibc's struct sigevent (64 bytes on 64-bit Linux)
    _fields_ = [("value", ctypes.c_void_p), ("signo", ctypes.c_int), ("notify", ctypes.c_int),
                ("thread", _SigevThread), ("pad", ctypes.c_int * 8)]


def _arm_exit_deadline(seconds: float) -> None:
    """Have the C library call ``_exit(0)`` in ``seconds`` from a thread of its own (POSIX timer, SIGEV_THREAD).

    That thread needs no Python and no GIL, so it fires even while the main thread is stuck in C code that
    holds the GIL, as the DDS teardown does; a Python timer thread would wait for the GIL. Where the C library
    has no such timer, a Python timer thread stands in.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        event = _Sigevent(value=None, signo=0, notify=SIGEV_THREAD)
        event.thread.function = ctypes.cast(libc._exit, ctypes.c_void_p).value  # called with sigev_value = 0
        timer = ctypes.c_void_p()
        due = _Itimerspec(value=_Timespec(int(seconds), int(seconds % 1 * 1e9)))
        if libc.timer_create(CLOCK_MONOTONIC, ctypes.byref(event), ctypes.byref(timer)) == 0 and \
                libc.timer_settime(timer, 0, ctypes.byref(due), None) == 0:
            return
    except (OSError, AttributeError):
        pass
    threading.Timer(seconds, _end, args=(0,)).start()


def _end(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process now (any thread)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def handle_signals() -> None:
    """Handle SIGINT and SIGTERM as the module docstring says (the first one counts, later ones are ignored)."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def run(module: str) -> NoReturn:
    """Entry point of a node executable: handle signals, import ``module``, call its ``main()``, exit.

    Once the node is down the process ends at once (``os._exit`` after flushing stdout and stderr, signals
    ignored): the interpreter's own teardown of torch and its objects takes about a second, during which
    Python restores the default signal handlers, so a second Ctrl-C or launch's SIGTERM would kill the
    process with an error code. And it ends EXIT_DEADLINE_S after the first signal at the latest: when every
    process of a system stops at once, the DDS teardown (destroying the node's entities, then the
    participant) now and then takes 2-3 s, holding the GIL, while peers go away too (seen with 10 processes on 2
    cores); the node has stopped its work by then, and the peers that stay see the participant leave when its
    lease ends. The deadline is a C library timer (:func:`_arm_exit_deadline`), as no Python thread can run then.
    """
    global _deadline
    _deadline = True
    handle_signals()
    code = 0
    try:
        importlib.import_module(module).main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _end(code)


def spin_node(factory: Callable[[], Any], args: list[str] | None = None) -> int:
    """Init rclpy (with the shipped Fast DDS profile unless the environment chose one: ``system.dds_environment``),
    build the node, spin it until SIGINT/SIGTERM or shutdown, destroy it; return the exit code.

    A constructor that fails on bad configuration (ValueError / FileNotFoundError: missing library, corrupt
    checkpoint, bad parameter) gives one line on stderr and exit code 1 instead of a traceback.
    """
    global _spinning
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from dynofa_ros.nodes.system import use_dds_profile

    handle_signals()
    use_dds_profile(os.environ)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = factory()
        except (ValueError, FileNotFoundError) as exc:
            print(f"{getattr(factory, '__name__', 'node')}: cannot start: {exc}", file=sys.stderr)
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        _spinning = True
        while rclpy.ok() and not _stop.is_set():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        _spinning = False
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
