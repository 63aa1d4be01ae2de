"""Evolutionary operators stay in the search space; search (under the chosen backend's latency), Pareto front,
predictor and GPU-result parsing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from dynofa_ros.offline.commands.search import search_backend
from dynofa_ros.offline.predictor import AccuracyPredictor, encode, fit_and_report, spearman
from dynofa_ros.offline.profile import LatencyLUT, LinearArchModel, layout_for
from dynofa_ros.offline.search import (
    EvolutionConfig,
    Point,
    SearchResult,
    SearchSpace,
    constraint_sweep,
    evolutionary_search,
    fill_gpu_latency,
    load_gpu_results,
    pareto_front,
    pick_spread,
    sweep_search,
)
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.serving import ONNXRUNTIME, TORCH, onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec

SPEC = SupernetSpec()


def _cost(arch: SubnetArch) -> float:
    """A synthetic latency: additive per active block, growing with kernel, expand and resolution."""
    act = arch.active_blocks(SPEC)
    return 1.0 + sum(0.1 + 0.01 * arch.ks[i] * arch.e[i] for i in act) * arch.resolution / 40


def _quality(arch: SubnetArch) -> float:
    act = arch.active_blocks(SPEC)
    return 0.5 + 0.002 * sum(arch.ks[i] + 2 * arch.e[i] for i in act) + 0.001 * arch.resolution


def test_operators_keep_configs_in_the_search_space() -> None:
    space = SearchSpace(SPEC, (40, 48))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(50)]
    for _ in range(300):
        a, b = rng.sample(archs, 2)
        for child in (space.mutate(a, rng, prob=rng.choice((0.1, 0.5, 1.0))), space.crossover(a, b, rng)):
            child.validate(SPEC)
            assert space.contains(child) and child.resolution in (40, 48)
            assert child == child.canonical(SPEC)
    assert all(space.mutate(a, rng, prob=0.0) == a for a in archs)
    assert len({space.mutate(archs[0], rng, prob=1.0) for _ in range(20)}) > 10
    assert not space.contains(SubnetArch.largest(SPEC))  # resolution 64 is outside this space
    with pytest.raises(ValueError, match="resolutions"):
        SearchSpace(SPEC, (33,))


def test_crossover_takes_every_gene_from_a_parent() -> None:
    space = SearchSpace(SPEC)
    rng = random.Random(1)
    a, b = SubnetArch.smallest(SPEC), SubnetArch.largest(SPEC)
    for _ in range(20):
        c = space.crossover(a, b, rng)
        assert set(c.d) <= {2, 4} and c.resolution in (a.resolution, b.resolution)


def test_evolution_respects_the_constraint_and_improves_on_seeds() -> None:
    space = SearchSpace(SPEC)
    rng = random.Random(0)
    seeds = [space.sample(rng) for _ in range(30)]
    limit = float(np.median([_cost(a) for a in seeds]))
    result = evolutionary_search(space, lambda archs: np.array([_quality(a) for a in archs]), _cost, limit,
                                 EvolutionConfig(population=30, generations=8), random.Random(2), seeds)
    assert result.latency_s == _cost(result.arch) <= limit
    assert result.score == _quality(result.arch)
    assert result.score > max(_quality(a) for a in seeds if _cost(a) <= limit)
    with pytest.raises(ValueError, match="below the smallest subnet"):
        evolutionary_search(space, lambda archs: np.zeros(len(archs)), _cost, 0.5)


def _two_backend_lut() -> LatencyLUT:
    """A synthetic 40-px LUT whose torch latency grows with the expand ratios but not the kernels, and an onnxruntime
    model whose latency is the depthwise MACs (kernel squared)."""
    entries = {k: 1e-4 * (1 + k.expand) for k in layout_for(SPEC).all_layer_keys(SPEC, [40])}
    model = LinearArchModel(SPEC, ONNXRUNTIME, (1e-3, 0.0, 0.0, 1e-3, 0.0))
    return LatencyLUT(SPEC, "cpu-1t", 1, "cpu", "synthetic", entries, predictors={ONNXRUNTIME: model})


def _mean_kernel(results: dict[SubnetArch, SearchResult]) -> float:
    return float(np.mean([r.arch.ks[i] for r in results.values() for i in r.arch.active_blocks(SPEC)]))


def test_search_constrains_the_chosen_backends_predicted_latency() -> None:
    lut, space = _two_backend_lut(), SearchSpace(SPEC, (40,))
    found: dict[str, dict[SubnetArch, SearchResult]] = {}
    for backend in (TORCH, ONNXRUNTIME):
        latency = lut.predictor(backend)
        constraints, found[backend] = sweep_search(space, lambda archs: np.array([_quality(a) for a in archs]),
                                                   latency, 4, EvolutionConfig(population=20, generations=4),
                                                   random.Random(0))
        assert constraints[0] == latency.predict(space.smallest())
        assert constraints[-1] == pytest.approx(latency.predict(space.largest()))
        assert all(r.latency_s == latency.predict(r.arch) <= r.constraint_s for r in found[backend].values())
    # torch's latency leaves the kernels free, so its subnets keep large ones; onnxruntime's pays for them
    assert set(found[TORCH]) != set(found[ONNXRUNTIME])
    assert space.smallest() in found[ONNXRUNTIME]  # alone under the lowest onnxruntime limit: searched all the same
    assert _mean_kernel(found[TORCH]) > _mean_kernel(found[ONNXRUNTIME])


@pytest.mark.skipif(not onnxruntime_installed(), reason="onnxruntime is not installed")
def test_search_backend_of_a_lut_file(capsys: pytest.CaptureFixture[str]) -> None:
    lut = _two_backend_lut()
    assert search_backend("auto", lut, Path("lut.json")) == ONNXRUNTIME  # what the perception node serves with
    assert search_backend(TORCH, lut, Path("lut.json")) == TORCH
    lut.predictors = {}  # a file profiled with torch only
    assert search_backend("auto", lut, Path("old.json")) == TORCH
    assert "old.json has no onnxruntime latency predictor" in capsys.readouterr().out
    with pytest.raises(ValueError) as exc:
        search_backend(ONNXRUNTIME, lut, Path("old.json"))
    assert str(exc.value).startswith("old.json: latency LUT cpu-1t has no onnxruntime predictor")
    assert "`dynofa profile --profiles cpu-1t --backends torch onnxruntime`" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_pareto_front_sweep_and_spread() -> None:
    lat = [5.0, 4.0, 6.0, 7.0, 6.5, 4.0]
    acc = [0.80, 0.70, 0.85, 0.84, 0.90, 0.60]
    assert pareto_front(lat, acc) == [1, 0, 2, 4]
    sweep = constraint_sweep(2.0, 8.0, 3)
    assert sweep == pytest.approx([2.0, 4.0, 8.0])
    assert pick_spread([1, 1.1, 2, 3.9, 4, 8], 3) == [0, 3, 5]
    assert pick_spread([1, 2], 5) == [0, 1]
    with pytest.raises(ValueError):
        constraint_sweep(3.0, 2.0, 4)


def test_predictor_learns_a_synthetic_accuracy_law() -> None:
    space = SearchSpace(SPEC)
    rng = random.Random(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(200)))
    noise = np.random.default_rng(0).normal(0, 0.002, len(archs))
    top1 = np.array([_quality(a) for a in archs]) + noise
    assert encode(SPEC, archs[:3]).shape == (3, 5 * 4 * 6 + len(SPEC.resolutions))
    predictor, report = fit_and_report(SPEC, archs, top1)
    assert report.rmse < 0.01 and report.spearman > 0.8 and report.n_test == 40
    assert isinstance(predictor, AccuracyPredictor)
    assert predictor.predict([SubnetArch.largest(SPEC)])[0] > predictor.predict([SubnetArch.smallest(SPEC)])[0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 4], [4, 3, 3, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        AccuracyPredictor.fit(SPEC, archs[:3], top1[:3])


def _gpu_results(tmp_path: Path, n: int = 12, measured: int = 6, sha256: str | None = None) -> Path:
    rng = random.Random(0)
    cands = []
    for i in range(n):
        arch = SubnetArch.sample(SPEC, rng)
        c = {"arch": arch.to_dict(), "val_top1": _quality(arch), "macs": int(_cost(arch) * 1e6), "params": 10 ** 6}
        if i < measured:
            c["latency"] = {"p50_s": 0.001 * (2 + sum(arch.d) * 0.2 + _cost(arch)),
                            "p90_s": 0.0011 * (2 + sum(arch.d) * 0.2 + _cost(arch))}
        cands.append(c)
    path = tmp_path / "results.json"
    checkpoint = {"path": "supernet.pt"} | ({"sha256": sha256} if sha256 else {})
    path.write_text(json.dumps({"env": {"device": "cuda", "gpu": "NVIDIA H200"}, "spec": SPEC.to_dict(),
                                "latency_method": "batch 1", "checkpoint": checkpoint, "candidates": cands}))
    return path


def test_gpu_results_parse_and_unmeasured_latency_is_predicted(tmp_path: Path) -> None:
    points, job = load_gpu_results(_gpu_results(tmp_path), SPEC)
    assert job["env"]["gpu"] == "NVIDIA H200" and job["args"] == {} and job["sha256"] is None and len(points) == 12
    assert all(isinstance(p, Point) and p.arch == p.arch.canonical(SPEC) for p in points)
    model = fill_gpu_latency(points)
    assert model is not None and model.error["holdout_mape"] < 1e-6  # the synthetic law is linear
    methods = [p.gpu["method"] for p in points]
    assert sum(m.startswith("measured") for m in methods) == 6
    assert sum(m.startswith("predicted") for m in methods) == 6
    assert all(p.gpu["p90_s"] >= p.gpu["p50_s"] > 0 and p.gpu["processor"] == "NVIDIA H200" for p in points)
    with pytest.raises(ValueError, match="another supernet spec"):
        load_gpu_results(tmp_path / "results.json", SupernetSpec(resolutions=(32, 40)))
    (tmp_path / "bad.json").write_text(json.dumps({"spec": SPEC.to_dict()}))
    with pytest.raises(ValueError, match="candidates"):
        load_gpu_results(tmp_path / "bad.json", SPEC)
    with pytest.raises(FileNotFoundError):
        load_gpu_results(tmp_path / "missing.json", SPEC)


def test_gpu_results_of_another_checkpoint_are_refused(tmp_path: Path) -> None:
    path = _gpu_results(tmp_path, sha256="a" * 64)
    points, job = load_gpu_results(path, SPEC, "a" * 64)
    assert job["sha256"] == "a" * 64 and len(points) == 12
    with pytest.raises(ValueError, match="another checkpoint"):
        load_gpu_results(path, SPEC, "b" * 64)
