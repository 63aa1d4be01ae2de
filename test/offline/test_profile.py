"""Latency predictors: layer keys and features match the real subnet, the LUT sums its parts, the linear model fits
its law, files (old ones too) round-trip, held-out subnets stay out of the fit, CLI runs per backend."""

from __future__ import annotations

import argparse
import json
import random
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.offline.commands import profile as profile_command
from dynofa_ros.offline.profile import (
    ARCH_FEATURES,
    LatencyLUT,
    LinearArchModel,
    LinearLatencyModel,
    Measured,
    arch_features,
    build_lut,
    build_unit,
    cpu_threads,
    fit_overhead,
    layout_for,
    measure_subnets,
    prediction_error,
    split_archs,
    subnet_call,
    trimmed_mean,
)
from dynofa_ros.offline.timing import Timing, torch_threads
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.runtime import extract_subnet
from dynofa_ros.supernet.serving import ONNXRUNTIME, TORCH, onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

SPEC = SupernetSpec()


@pytest.fixture(scope="module")
def supernet() -> torch.nn.Module:
    return build_supernet(SPEC).eval()


def _archs(n: int, seed: int = 0, resolution: int = 40) -> list[SubnetArch]:
    rng = random.Random(seed)
    return [replace(SubnetArch.sample(SPEC, rng), resolution=resolution) for _ in range(n)]


def test_layer_keys_match_extracted_subnet(supernet: torch.nn.Module) -> None:
    layout = layout_for(SPEC)
    for arch in [*_archs(3), SubnetArch.smallest(SPEC), SubnetArch.largest(SPEC)]:
        net = extract_subnet(supernet, arch)
        seen: list[tuple[int, int]] = []  # (in channels, input size) of every timed unit
        modules = [net.first_conv, *net.blocks, net.final_expand_layer, net.feature_mix_layer]
        hooks = [m.register_forward_pre_hook(lambda _, inp, seen=seen: seen.append((inp[0].shape[1], inp[0].shape[-1])))
                 for m in modules]
        with torch.no_grad():
            net(torch.randn(1, 3, arch.resolution, arch.resolution))
        for h in hooks:
            h.remove()
        keys = layout.layer_keys(arch)
        # the head key's input is the final_expand output: feature_mix sees it after pooling (size 1)
        assert [(k.in_ch, k.resolution) for k in keys[:-1]] == seen[:-1]
        assert keys[-1].in_ch == seen[-1][0] and keys[-1].out_ch == SPEC.num_classes
        blocks = [b.conv for b in net.blocks[1:]]
        mb = [k for k in keys if k.kind == "mbconv"][1:]
        assert [(k.kernel, k.expand, k.stride, k.out_ch, k.se, k.act) for k in mb] == [
            (b.kernel_size, b.expand_ratio, b.stride, b.out_channels, bool(b.use_se), b.act_func) for b in blocks]


def test_units_chain_to_the_subnet_output_shape(supernet: torch.nn.Module) -> None:
    layout = layout_for(SPEC)
    arch = _archs(1, seed=3, resolution=48)[0]
    x = torch.randn(1, 3, arch.resolution, arch.resolution)
    with torch.no_grad():
        for key in layout.layer_keys(arch):
            assert x.shape[1:] == (key.in_ch, key.resolution, key.resolution), key.name
            x = build_unit(supernet, layout, key)(x)
    assert x.shape == (1, SPEC.num_classes)


def test_all_layer_keys_cover_every_subnet() -> None:
    layout = layout_for(SPEC)
    keys = set(layout.all_layer_keys(SPEC, [40]))
    for arch in _archs(30, seed=1):
        assert set(layout.layer_keys(arch)) <= keys
    assert len(keys) == 4 + 5 * 2 * len(SPEC.ks_list) * len(SPEC.expand_list)


@pytest.fixture(scope="module")
def small_lut(supernet: torch.nn.Module) -> LatencyLUT:
    layout = layout_for(SPEC)
    archs = _archs(2, seed=5)
    keys = sorted({k for a in archs for k in layout.layer_keys(a)})
    lut, timings = build_lut(supernet, SPEC, "cpu-1t", keys, warmup=1, repeats=4, rounds=2, progress=False,
                             extra=[subnet_call(supernet, a) for a in archs])
    assert len(timings) == 2 and all(0 < t.p50_s <= t.p90_s and t.repeats == 4 for t in timings)
    return lut


def test_lut_prediction_is_sum_of_parts_plus_overhead(small_lut: LatencyLUT) -> None:
    arch = _archs(2, seed=5)[1]
    parts = [small_lut.entries[k] for k in layout_for(SPEC).layer_keys(arch)]
    assert all(v > 0 for v in parts)
    assert small_lut.predict(arch) == sum(parts) + small_lut.overhead_s
    small_lut.overhead_s = 0.0
    measured = [Measured(a, "cpu-1t", Timing(t, t, t, 1, 0)) for a, t in zip(_archs(2, seed=5), (0.004, 0.009),
                                                                              strict=True)]
    residuals = [m.timing.p50_s - small_lut.predict(m.arch) for m in measured]
    assert fit_overhead(small_lut, measured) == pytest.approx(statistics.median(residuals))
    assert small_lut.predict(arch) == pytest.approx(sum(parts) + statistics.median(residuals))
    err = prediction_error(small_lut, measured)
    assert err["n"] == 2 and err["max_ape"] >= err["mape"] >= 0


def test_lut_round_trip_and_errors(small_lut: LatencyLUT, tmp_path: Path) -> None:
    small_lut.save(tmp_path / "lut.json")
    loaded = LatencyLUT.load(tmp_path / "lut.json")
    assert loaded.entries == small_lut.entries and loaded.overhead_s == small_lut.overhead_s
    assert loaded.resolutions == (40,)
    with pytest.raises(KeyError, match="no entry for layer"):
        loaded.predict(replace(_archs(1)[0], resolution=64))
    with pytest.raises(FileNotFoundError):
        LatencyLUT.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a latency LUT"):
        LatencyLUT.load(tmp_path / "bad.json")


def test_measure_subnets_and_threads(supernet: torch.nn.Module) -> None:
    before = torch.get_num_threads()
    [t] = measure_subnets(supernet, [SubnetArch.smallest(SPEC)], threads=1, warmup=1, repeats=5, rounds=1,
                          progress=False)
    assert 0 < t.p50_s <= t.p90_s and t.repeats == 5 and "median" in t.method
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        with torch_threads(0):
            pass
    assert cpu_threads("cpu-2t") == 2 and cpu_threads("cpu-4t") == 4
    with pytest.raises(ValueError, match="unknown CPU profile"):
        cpu_threads("gpu")


def test_trimmed_mean_ignores_preemption_outliers() -> None:
    samples = np.array([1.0, 1.1, 0.9, 1.0, 50.0, 1.05, 0.95, 1.0])
    assert trimmed_mean(samples) == pytest.approx(1.0, abs=0.03)
    assert trimmed_mean(samples, trim=0.0) == pytest.approx(samples.mean())


def _conv_macs(net: torch.nn.Module, resolution: int) -> dict[str, int]:
    """MACs of the dense and the depthwise convolutions of ``net`` on full feature maps (not SE, not the head)."""
    macs = {"dense": 0, "depthwise": 0}

    def count(conv: torch.nn.Conv2d, _: object, out: torch.Tensor) -> None:
        per_output = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        macs["depthwise" if conv.groups > 1 else "dense"] += out.numel() * per_output

    hooks = [m.register_forward_hook(count) for name, m in net.named_modules()
             if isinstance(m, torch.nn.Conv2d) and ".se." not in name and not name.startswith("feature_mix")]
    with torch.no_grad():
        net(torch.randn(1, 3, resolution, resolution))
    for h in hooks:
        h.remove()
    return macs


def test_arch_features_count_the_subnets_convolutions(supernet: torch.nn.Module) -> None:
    for arch in [*_archs(3, seed=2, resolution=48), SubnetArch.smallest(SPEC), SubnetArch.largest(SPEC)]:
        macs = _conv_macs(extract_subnet(supernet, arch), arch.resolution)
        features = arch_features(SPEC, arch)
        assert features[0] == 1 and features[1] == 1 + sum(arch.d)  # the fixed first block is a residual block too
        assert features[2:4] * 1e6 == pytest.approx([macs["dense"], macs["depthwise"]])
        assert features[4] > 0


def _measured_by_law(coef: np.ndarray, archs: list[SubnetArch]) -> list[Measured]:
    return [Measured(a, "cpu-1t", Timing(*(float(arch_features(SPEC, a) @ coef),) * 3, 1, 0)) for a in archs]


def test_linear_arch_model_fits_predicts_and_round_trips() -> None:
    coef = np.array([5e-4, 2e-5, 1e-5, 4e-5, 3e-5])
    fit, held_out = _archs(8, seed=3), _archs(4, seed=4, resolution=48)
    model = LinearArchModel.fit(SPEC, ONNXRUNTIME, _measured_by_law(coef, fit))
    assert model.coef == pytest.approx(coef, rel=1e-6) and model.backend == ONNXRUNTIME
    model.error = prediction_error(model, _measured_by_law(coef, held_out))
    assert model.error["mape"] < 1e-9 and model.error["n"] == 4
    loaded = LinearArchModel.from_dict(json.loads(json.dumps(model.to_dict())), SPEC)
    assert loaded == model and [loaded.predict(a) for a in held_out] == [model.predict(a) for a in held_out]
    with pytest.raises(ValueError, match=f">= {len(ARCH_FEATURES)} measured fit subnets"):
        LinearArchModel.fit(SPEC, ONNXRUNTIME, _measured_by_law(coef, fit[:4]))
    with pytest.raises(ValueError, match="unknown latency predictor"):
        LinearArchModel.from_dict({**model.to_dict(), "features": ["blocks"]}, SPEC)


def test_lut_file_holds_each_backends_predictor_and_old_files_load(small_lut: LatencyLUT, tmp_path: Path) -> None:
    small_lut.predictors = {ONNXRUNTIME: LinearArchModel(SPEC, ONNXRUNTIME, (1e-3, 1e-5, 2e-5, 3e-5, 4e-5))}
    small_lut.save(tmp_path / "lut.json")
    loaded = LatencyLUT.load(tmp_path / "lut.json")
    arch = _archs(2, seed=5)[0]
    assert loaded.backends == (TORCH, ONNXRUNTIME) and loaded.predictor(TORCH) is loaded
    assert loaded.predictor(ONNXRUNTIME).predict(arch) == small_lut.predictors[ONNXRUNTIME].predict(arch)
    assert loaded.predictor(TORCH).predict(arch) == small_lut.predict(arch)
    old = small_lut.to_dict()
    del old["predictors"]  # a file written before the other backends had predictors
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = LatencyLUT.load(tmp_path / "old.json")
    assert loaded.backends == (TORCH,) and loaded.predictor(TORCH).predict(arch) == small_lut.predict(arch)
    with pytest.raises(ValueError) as exc:
        loaded.predictor(ONNXRUNTIME)
    assert "\n" not in str(exc.value)
    assert "`dynofa profile --profiles cpu-1t --backends torch onnxruntime`" in str(exc.value)
    small_lut.predictors = {}


def test_held_out_subnets_are_not_fit_subnets() -> None:
    small = SupernetSpec(ks_list=(3,), expand_list=(3,), depth_list=(2, 3), resolutions=(32,))  # 32 subnets
    fit, held_out = split_archs(small, [32], 12, 30, random.Random(0))
    assert fit[:2] == [SubnetArch.smallest(small), SubnetArch.largest(small)] and len(fit) == 14
    assert not set(fit) & set(held_out) and len(set(held_out)) == len(held_out) == 32 - 14


def test_linear_latency_model_recovers_a_linear_law() -> None:
    rng = np.random.default_rng(0)
    blocks = rng.integers(10, 21, 40)
    macs = rng.uniform(5e6, 60e6, 40)
    lat = 0.002 + 0.0003 * blocks + 0.00005 * macs / 1e6
    model = LinearLatencyModel.fit(blocks, macs, lat)
    assert model.coef == pytest.approx((0.002, 0.0003, 0.00005), rel=1e-6)
    assert model.error["holdout_mape"] < 1e-9
    assert model.predict(12, 20e6) == pytest.approx(0.002 + 0.0036 + 0.001)
    with pytest.raises(ValueError):
        LinearLatencyModel.fit([1, 2], [1, 2], [1, 2])


def _profile(tmp_path: Path, *options: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    profile_command.add_arguments(parser)
    return parser.parse_args(["--out", str(tmp_path), "--profiles", "cpu-1t", "--resolutions", "40", "--warmup", "1",
                              "--repeats", "3", "--rounds", "2", *options])


def _check_report(tmp_path: Path, backends: tuple[str, ...], n_fit: int, n_holdout: int) -> LatencyLUT:
    """The LUT file and the report agree for each backend: error on the held-out subnets, none of them fitted on."""
    lut = LatencyLUT.load(tmp_path / "lut_cpu-1t.json")
    assert lut.backends == backends
    rep = json.loads((tmp_path / "profile_report.json").read_text())["profiles"]["cpu-1t"]
    assert list(rep["backends"]) == list(backends) and rep["overhead_s"] == lut.overhead_s
    for backend, report in rep["backends"].items():
        predictor = lut.predictor(backend)
        assert report["error"] == predictor.error and report["error_on"] == "held-out"
        assert report["error"]["n"] == n_holdout and report["error"]["max_ape"] >= report["error"]["mape"] >= 0
        sets = {name: [m["arch"] for m in report["measured"] if m["set"] == name] for name in ("fit", "held-out")}
        assert len(sets["fit"]) == n_fit + 2 and len(sets["held-out"]) == n_holdout
        assert not {json.dumps(a) for a in sets["fit"]} & {json.dumps(a) for a in sets["held-out"]}
        for m in report["measured"]:
            assert m["predicted_s"] == pytest.approx(predictor.predict(SubnetArch.from_dict(m["arch"])))
            assert 0 < m["p50_s"] <= m["p90_s"]
    return lut


def test_profile_command_writes_luts_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _profile(tmp_path, "--backends", "torch", "--fit", "1", "--holdout", "2")
    assert profile_command.run(args) == 0
    _check_report(tmp_path, (TORCH,), 1, 2)
    assert "torch (per-layer-lut): held-out MAPE" in capsys.readouterr().out
    args.resolutions = [41]
    with pytest.raises(ValueError, match="--resolutions 41"):
        profile_command.run(args)


@pytest.mark.skipif(not onnxruntime_installed(), reason="onnxruntime is not installed")
def test_profile_command_fits_a_predictor_per_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert profile_command.run(_profile(tmp_path, "--backends", "torch", "onnxruntime", "--fit", "3",
                                        "--holdout", "2")) == 0
    lut = _check_report(tmp_path, (TORCH, ONNXRUNTIME), 3, 2)
    assert isinstance(lut.predictor(ONNXRUNTIME), LinearArchModel)
    printed = capsys.readouterr().out
    assert "torch (per-layer-lut): held-out MAPE" in printed and "onnxruntime (linear-arch): held-out MAPE" in printed
    with pytest.raises(ValueError, match="--fit 3 or more"):  # refused before anything is timed
        profile_command.run(_profile(tmp_path, "--backends", "onnxruntime", "--fit", "2"))
