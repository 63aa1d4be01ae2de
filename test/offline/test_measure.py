"""`dynofa measure`: a library's CPU latency records are re-measured in place, other profiles kept."""

from __future__ import annotations

import dataclasses

import pytest

from dynofa_ros.offline.cli import main
from dynofa_ros.supernet.library import LatencyProfile, SubnetLibrary
from dynofa_ros.supernet.synthetic import random_library


def test_measure_updates_cpu_profiles_and_keeps_others(tmp_path):
    lib = random_library(tmp_path / "lib", n_levels=2)
    gpu = LatencyProfile("gpu", "cuda", 1, 0.004, 0.005, "measured elsewhere")
    lib = dataclasses.replace(lib, levels=[dataclasses.replace(lv, latency=(gpu,)) for lv in lib.levels])
    path = lib.save(tmp_path / "lib" / "library.json")

    assert main(["measure", "--library", str(path), "--profiles", "cpu-1t",
                 "--warmup", "1", "--repeats", "3", "--rounds", "1"]) == 0

    measured = SubnetLibrary.load(path)
    for level in measured.levels:
        cpu = level.latency_for("cpu-1t")
        assert cpu is not None and 0 < cpu.p50_s <= cpu.p90_s and cpu.threads == 1
        assert level.latency_for("gpu") == gpu


def test_measure_refuses_a_missing_library(tmp_path, capsys):
    assert main(["measure", "--library", str(tmp_path / "nope.json")]) != 0
    assert "nope.json" in capsys.readouterr().err


def test_measure_times_each_backend_into_its_own_records(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DYNOFA_CACHE", str(tmp_path / "cache"))
    path = random_library(tmp_path / "lib", n_levels=2).save(tmp_path / "lib" / "library.json")
    args = ["measure", "--library", str(path), "--profiles", "cpu-1t", "--warmup", "1", "--repeats", "3",
            "--rounds", "1"]
    assert main([*args, "--backends", "torch"]) == 0
    eager = [lv.latency_for("cpu-1t") for lv in SubnetLibrary.load(path).levels]
    assert main([*args, "--backends", "onnxruntime"]) == 0

    for level, before in zip(SubnetLibrary.load(path).levels, eager, strict=True):
        assert level.latency_for("cpu-1t") == before  # the eager records are kept
        ort = level.latency_for("cpu-1t", "onnxruntime")
        assert ort is not None and ort.backend == "onnxruntime" and 0 < ort.p50_s <= ort.p90_s
    assert not (tmp_path / "cache" / "onnx").exists()  # timing exports go to a temporary folder
