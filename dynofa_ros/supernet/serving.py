"""Which backend serves a library's levels: names, what this machine has, and the default (no torch here).

- ``torch``: the extracted subnet run eagerly (the only backend of the in-place mode).
- ``onnxruntime``: each level exported once to ONNX and run by an ONNX Runtime session (CPU; the CUDA and
  TensorRT execution providers when the installed ``onnxruntime`` has them and the device is CUDA).
- ``cuda-graph``: each level's batch-1 forward pass captured as a CUDA graph and replayed (CUDA devices).

``auto`` picks the fastest one the machine has: ``cuda-graph`` on CUDA, ``onnxruntime`` on CPU when it is
installed, else ``torch``. Latency records carry the backend they were measured with.
"""

from __future__ import annotations

import importlib.util

TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
CUDA_GRAPH = "cuda-graph"
BACKENDS = (TORCH, ONNXRUNTIME, CUDA_GRAPH)
AUTO = "auto"
CHOICES = (AUTO, *BACKENDS)


def onnxruntime_installed() -> bool:
    """Whether ``onnxruntime`` can be imported (not imported here: it is slow to load)."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(name: str, device_type: str = "cpu", mode: str = "cache") -> str:
    """The backend ``name`` (one of :data:`CHOICES`) means on a ``device_type`` (``cpu``/``cuda``) device in
    runtime ``mode``; ValueError naming the way out when it cannot run there."""
    if name not in CHOICES:
        raise ValueError(f"unknown backend {name!r}; choose one of {CHOICES}")
    if mode == "inplace":
        if name not in (AUTO, TORCH):
            raise ValueError(f"the in-place mode switches one supernet eagerly: backend must be {TORCH} or {AUTO}, "
                             f"got {name!r} (use mode cache)")
        return TORCH
    if name == AUTO:
        if device_type == "cuda":
            return CUDA_GRAPH
        return ONNXRUNTIME if onnxruntime_installed() else TORCH
    if name == ONNXRUNTIME and not onnxruntime_installed():
        raise ValueError("backend onnxruntime needs the onnxruntime package (pip install onnxruntime)")
    if name == CUDA_GRAPH and device_type != "cuda":
        raise ValueError(f"backend {CUDA_GRAPH} needs a CUDA device, got {device_type}")
    return name


def backends_line(per_level: tuple[str, ...]) -> str:
    """What serves the levels, in a few words: ``onnxruntime`` when one backend serves all of them, else each
    backend with the levels it serves (``onnxruntime L0+L1+L2, torch L3``)."""
    names = dict.fromkeys(per_level)
    if len(names) == 1:
        return per_level[0]
    return ", ".join(f"{b} " + "+".join(f"L{i}" for i, x in enumerate(per_level) if x == b) for b in names)
