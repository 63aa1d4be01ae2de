"""Runners: one level's extracted subnet served by a backend (:mod:`dynofa_ros.supernet.serving`).

A runner is built at load time (export, session, graph capture) so that a level switch stays a pointer swap;
calling it is one forward pass, logits out as a torch tensor on the input's device. Every non-eager runner is
checked against the eager subnet on a probe batch before it serves; one that fails (or cannot be built) is
replaced by the eager subnet with a warning, never served silently wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.serving import CUDA_GRAPH, ONNXRUNTIME, TORCH

log = logging.getLogger(__name__)

PROBE_BATCH = 4
ABS_TOL, REL_TOL = 1e-3, 1e-3  # logits may differ by ABS_TOL + REL_TOL * max |logit| (fused kernels round apart)


class Runner(Protocol):
    """A level served by one backend."""

    backend: str

    def __call__(self, batch: Tensor) -> Tensor: ...


@dataclass
class TorchRunner:
    """The eager subnet."""

    module: nn.Module
    backend: str = TORCH

    def __call__(self, batch: Tensor) -> Tensor:
        return self.module(batch)


def ort_providers(device: torch.device) -> list[str]:
    """ONNX Runtime execution providers for ``device``, best first: TensorRT and CUDA (when the installed
    onnxruntime has them) on a CUDA device, then the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if device.type == "cuda" else []
    return [p for p in wanted if p in available] + ["CPUExecutionProvider"]


class OrtRunner:
    """An ONNX Runtime session of the level's exported graph (all graph optimisations, ``threads`` intra-op
    threads). Inputs and outputs go through host memory (zero-copy views on the CPU)."""

    backend = ONNXRUNTIME

    def __init__(self, path: Path, device: torch.device, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the providers' notes are not the user's concern
        device_id = device.index or 0
        provider_options = [{"device_id": device_id} if p != "CPUExecutionProvider" else {}
                            for p in ort_providers(device)]
        self.session = ort.InferenceSession(str(path), options, providers=ort_providers(device),
                                            provider_options=provider_options)
        self.path = path
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name

    def __call__(self, batch: Tensor) -> Tensor:
        x = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = torch.from_numpy(self.session.run([self.output], {self.input: x})[0])
        return logits if batch.device.type == "cpu" else logits.to(batch.device)


class CudaGraphRunner:
    """The eager subnet's batch-1 forward pass at ``resolution`` captured as a CUDA graph: a batch of one is a
    copy in and a replay; other batch sizes run eagerly."""

    backend = CUDA_GRAPH

    def __init__(self, module: nn.Module, resolution: int, device: torch.device) -> None:
        self.module = module
        self.static_in = torch.zeros(1, 3, resolution, resolution, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # warm-up outside the capture (cuDNN picks its kernels here)
                module(self.static_in)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.static_out = module(self.static_in)

    def __call__(self, batch: Tensor) -> Tensor:
        if batch.shape != self.static_in.shape:
            return self.module(batch)
        self.static_in.copy_(batch, non_blocking=True)
        self.graph.replay()
        return self.static_out.clone()


@dataclass(frozen=True)
class RunnerCheck:
    """A runner against the eager subnet on a seeded probe batch."""

    max_abs_diff: float
    top1_agree: float
    ok: bool


@torch.inference_mode()
def check_runner(runner: Runner, module: nn.Module, resolution: int, device: torch.device,
                 n: int = PROBE_BATCH, seed: int = 0) -> RunnerCheck:
    """``runner``'s logits against ``module``'s on ``n`` seeded normal-noise inputs (batch ``n`` and batch 1):
    the largest difference, the share of equal top-1 classes, and whether both are within tolerance."""
    probe = torch.randn(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed)).to(device)
    ref = module(probe).float()
    got = torch.cat([runner(probe).float(), runner(probe[:1]).float()])
    ref = torch.cat([ref, ref[:1]])
    diff = (got - ref).abs().max().item()
    agree = (got.argmax(1) == ref.argmax(1)).float().mean().item()
    ok = bool(torch.isfinite(got).all()) and diff <= ABS_TOL + REL_TOL * ref.abs().max().item() and agree == 1.0
    return RunnerCheck(diff, agree, ok)


def serve_level(module: nn.Module, resolution: int, backend: str, device: torch.device, threads: int | None = None,
                name: str = "level", cache_dir: Path | None = None, check: bool = True) -> Runner:
    """``module`` (an extracted, eval-mode subnet on ``device``) served by ``backend`` (a resolved one, not
    ``auto``), checked against itself (``check=False``: only timed, not served, so only built); the eager
    subnet, with a warning, when the backend fails."""
    if backend == TORCH:
        return TorchRunner(module)
    try:
        if backend == ONNXRUNTIME:
            from dynofa_ros.supernet.onnx_export import cached_onnx

            runner: Runner = OrtRunner(cached_onnx(module, resolution, cache_dir), device,
                                       threads or torch.get_num_threads())
        elif backend == CUDA_GRAPH:
            runner = CudaGraphRunner(module, resolution, device)
        else:
            raise ValueError(f"unknown backend {backend!r}")
        result = check_runner(runner, module, resolution, device) if check else None
    except (RuntimeError, OSError, ValueError, ImportError) as exc:  # onnxruntime's errors are RuntimeErrors
        log.warning("%s: backend %s failed (%s); serving it eagerly with torch", name, backend,
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return TorchRunner(module)
    if result is not None and not result.ok:
        log.warning("%s: backend %s disagrees with the eager subnet (max logit difference %.3g, top-1 agreement "
                    "%.0f %%); serving it eagerly with torch", name, backend, result.max_abs_diff,
                    result.top1_agree * 100)
        return TorchRunner(module)
    return runner
