"""Latency LUT: layer keys match the real subnet, the LUT sums its parts, files round-trip, CLI runs."""

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
    LatencyLUT,
    LinearLatencyModel,
    Measured,
    build_lut,
    build_unit,
    cpu_threads,
    fit_overhead,
    layout_for,
    measure_subnet,
    prediction_error,
    trimmed_mean,
)
from dynofa_ros.offline.timing import Timing, torch_threads
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.runtime import extract_subnet
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
                             extra=archs)
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


def test_measure_subnet_and_threads(supernet: torch.nn.Module) -> None:
    before = torch.get_num_threads()
    t = measure_subnet(supernet, SubnetArch.smallest(SPEC), threads=1, warmup=1, repeats=5)
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


def test_profile_command_writes_luts_and_report(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    profile_command.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--profiles", "cpu-1t", "--resolutions", "40", "--fit", "1",
                              "--holdout", "2", "--warmup", "1", "--repeats", "3", "--rounds", "2"])
    assert profile_command.run(args) == 0
    lut = LatencyLUT.load(tmp_path / "lut_cpu-1t.json")
    report = json.loads((tmp_path / "profile_report.json").read_text())
    rep = report["profiles"]["cpu-1t"]
    assert rep["error"]["n"] == 2 and rep["error"]["mape"] >= 0 and lut.error == rep["error"]
    assert len(rep["measured"]) == 5  # smallest, largest, 1 fit + 2 held-out
    for m in rep["measured"]:
        assert m["lut_s"] == pytest.approx(lut.predict(SubnetArch.from_dict(m["arch"])))
    args.resolutions = [41]
    with pytest.raises(ValueError, match="--resolutions 41"):
        profile_command.run(args)
