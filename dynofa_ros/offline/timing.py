"""Latency timing shared by profiling, the GPU job and the benchmarks: timed call loops (optionally
synchronising an accelerator), interleaved timing of several callables, thread-count control and the
machine's processor name."""

from __future__ import annotations

import contextlib
import platform
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm


def processor_name() -> str:
    """CPU model name from ``lscpu`` (falls back to ``platform.processor()`` / machine)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5, env={"LC_ALL": "C"}).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count after."""
    if n <= 0:
        raise ValueError(f"thread count must be positive, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cuda_sync(device: torch.device | str) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a CUDA device (the ``sync`` of :func:`time_calls`), else None."""
    device = torch.device(device)
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


@dataclass(frozen=True)
class Timing:
    """Batch-1 latency statistics of one model, seconds."""

    p50_s: float
    p90_s: float
    mean_s: float
    repeats: int
    warmup: int
    rounds: int = 1

    @classmethod
    def of(cls, samples: np.ndarray, warmup: int, rounds: int = 1) -> Timing:
        """Statistics of per-call ``samples`` (seconds)."""
        return cls(float(np.median(samples)), float(np.percentile(samples, 90)), float(np.mean(samples)),
                   len(samples), warmup, rounds)

    @property
    def method(self) -> str:
        passes = f" in {self.rounds} interleaved passes" if self.rounds > 1 else ""
        return f"extracted subnet, eval mode, {self.warmup} warm-up, median/p90 of {self.repeats}{passes}"


def time_calls(fn: Callable[[], object], warmup: int, repeats: int,
               sync: Callable[[], None] | None = None) -> np.ndarray:
    """Wall time in seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    ``sync`` (e.g. :func:`cuda_sync`) runs before the clock starts and before it stops, so that
    asynchronous accelerator work is inside the timed interval.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    wait = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    samples = np.empty(repeats)
    for i in range(repeats):
        wait()
        start = time.perf_counter()
        fn()
        wait()
        samples[i] = time.perf_counter() - start
    return samples


def time_interleaved(calls: Sequence[Callable[[], object]], threads: int, warmup: int, repeats: int,
                     rounds: int, desc: str = "time", progress: bool = True,
                     sync: Callable[[], None] | None = None) -> list[np.ndarray]:
    """Per-call timings of several callables, ``repeats`` each, split over ``rounds`` passes over all of them.

    Interleaving spreads the slow load changes of a shared machine over every callable alike, so
    callables compared with each other see the same conditions. ``warmup`` untimed calls precede each
    callable's first pass, one its later passes. Runs under ``threads`` torch threads in inference mode.
    """
    if rounds < 1 or repeats < rounds:
        raise ValueError(f"need 1 <= rounds <= repeats, got rounds={rounds}, repeats={repeats}")
    samples: list[list[np.ndarray]] = [[] for _ in calls]
    with torch_threads(threads), torch.inference_mode():
        for r in range(rounds):
            n = repeats // rounds + (r < repeats % rounds)
            for i, fn in enumerate(tqdm(calls, desc=f"{desc} pass {r + 1}/{rounds}", disable=not progress)):
                samples[i].append(time_calls(fn, warmup if r == 0 else 1, n, sync))
    return [np.concatenate(s) for s in samples]
