"""Serving backends: the choice, ONNX Runtime levels equal to the eager ones, the export cache, the fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.supernet import runners
from dynofa_ros.supernet.runtime import DynamicNetwork
from dynofa_ros.supernet.serving import backends_line, resolve_backend

pytest.importorskip("onnxruntime")


def test_auto_picks_the_fastest_backend_the_machine_has() -> None:
    assert resolve_backend("auto", "cpu") == "onnxruntime"
    assert resolve_backend("auto", "cuda") == "cuda-graph"
    assert resolve_backend("auto", "cpu", "inplace") == "torch"
    assert resolve_backend("torch", "cuda") == "torch"
    for bad in (("onnxruntime", "cpu", "inplace"), ("cuda-graph", "cpu", "cache"), ("tensorrt", "cpu", "cache")):
        with pytest.raises(ValueError):
            resolve_backend(*bad)
    assert backends_line(("onnxruntime",) * 3) == "onnxruntime"
    assert backends_line(("onnxruntime", "torch", "onnxruntime")) == "onnxruntime L0+L2, torch L1"


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def onnx_cache(_module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user cache of these tests (shared by them: each level is exported once for the module)."""
    monkeypatch.setenv("DYNOFA_CACHE", str(_module_cache))
    return _module_cache / "onnx"


def _frames(n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_onnxruntime_levels_give_the_eager_logits_and_switch_between_frames(library_copy: Path,
                                                                            onnx_cache: Path) -> None:
    served = DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    eager = DynamicNetwork.from_library(library_copy, backend="torch")
    assert served.backend == "onnxruntime" and served.level_backends == ("onnxruntime",) * len(served.levels)
    assert eager.level_backends == ("torch",) * len(eager.levels)
    for i in reversed(range(len(served.levels))):
        served.request_level(i)
        eager.activate(i)
        got, want = served.run_frames(_frames()), eager.run_frames(_frames())
        assert got.level == want.level == i
        torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=1e-4)
        assert torch.equal(got.logits.argmax(1), want.logits.argmax(1))
    assert len(list(onnx_cache.glob("*.onnx"))) == len(served.levels) == len(list(onnx_cache.glob("*.sha256")))


def test_the_export_cache_is_reused_and_a_corrupt_file_exported_again(library_copy: Path, onnx_cache: Path) -> None:
    DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    files = sorted(onnx_cache.glob("*.onnx"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # nothing exported again

    files[0].write_bytes(files[0].read_bytes()[:1000])  # a torn write
    net = DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    assert net.level_backends == ("onnxruntime",) * len(net.levels)
    assert files[0].stat().st_size > 1000 and runners.ONNXRUNTIME in backends_line(net.level_backends)
    assert sorted(onnx_cache.glob("*.onnx")) == files


def test_a_backend_that_disagrees_or_fails_is_replaced_by_the_eager_level(library_copy: Path, onnx_cache: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    ort_call = runners.OrtRunner.__call__
    monkeypatch.setattr(runners.OrtRunner, "__call__", lambda self, batch: ort_call(self, batch) + 0.1)
    with caplog.at_level(logging.WARNING, logger="dynofa_ros.supernet.runners"):
        net = DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    assert net.level_backends == ("torch",) * len(net.levels)
    assert sum("disagrees" in r.getMessage() for r in caplog.records) == len(net.levels)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("exporter broke")

    monkeypatch.setattr("dynofa_ros.supernet.onnx_export.export_onnx", broken)
    monkeypatch.setenv("DYNOFA_CACHE", str(onnx_cache.parent / "empty"))  # nothing cached: an export is needed
    net = DynamicNetwork.from_library(library_copy, backend="onnxruntime")
    assert net.level_backends == ("torch",) * len(net.levels)
    eager = DynamicNetwork.from_library(library_copy, backend="torch")
    torch.testing.assert_close(net.run_frames(_frames()).logits, eager.run_frames(_frames()).logits)


def test_in_place_mode_refuses_a_compiled_backend(library_copy: Path) -> None:
    with pytest.raises(ValueError, match="in-place"):
        DynamicNetwork.from_library(library_copy, mode="inplace", backend="onnxruntime")
    assert DynamicNetwork.from_library(library_copy, mode="inplace").level_backends[0] == "torch"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("copy", ["library_copy", "vit_library_copy"])
def test_cuda_graph_levels_give_the_eager_logits(copy: str, request: pytest.FixtureRequest) -> None:
    library = request.getfixturevalue(copy)
    served = DynamicNetwork.from_library(library, device="cuda", backend="cuda-graph")
    eager = DynamicNetwork.from_library(library, device="cuda", backend="torch")
    assert served.level_backends == ("cuda-graph",) * len(served.levels)
    for i in range(len(served.levels)):
        served.activate(i)
        eager.activate(i)
        for n in (1, 3):
            torch.testing.assert_close(served.run_frames(_frames(n)).logits, eager.run_frames(_frames(n)).logits)
