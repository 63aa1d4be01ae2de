"""The one-shot GPU training job on CPU: train, export, rebuild a library's levels, evaluate, time, test, resume."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dynofa_ros.offline.train import initial_supernet
from dynofa_ros.offline.train_state import read_progress
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.library import SubnetLibrary, sha256_file
from dynofa_ros.supernet.spec import SupernetSpec
from experiments import gpu_job

from ..data_util import cifar_jpeg_tarball

SHIPPED_LIBRARY = Path(__file__).parents[2] / "models" / "cifar10_mbv3" / "library.json"


def test_gpu_job_runs_end_to_end_on_cpu(cifar_tiny_dir: Path, tmp_path: Path) -> None:
    tarball = cifar_jpeg_tarball(cifar_tiny_dir, tmp_path / "tiny.tar.gz")
    out = tmp_path / "out"
    common = ["--data", str(tarball), "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--val-size", "50",
              "--max-train-images", "32", "--batch-size", "32", "--time-budget", "1", "--n-calib", "16",
              "--eval-limit", "20", "--eval-budget", "60", "--latency-budget", "60", "--latency-warmup", "1",
              "--latency-runs", "3"]
    shipped = json.loads(SHIPPED_LIBRARY.read_text())
    source = tmp_path / "source" / "library.json"  # the shipped library's fastest and slowest levels
    source.parent.mkdir()
    source.write_text(json.dumps({**shipped, "levels": [shipped["levels"][0], shipped["levels"][-1]]}))
    rc = gpu_job.main([*common, "--out", str(out), "--max-subnets", "3", "--levels-from", str(source)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["job.log", "library", "momentum.pt", "progress.json",
                                                     "results.json", "supernet.pt", "train_log.jsonl"]
    results = json.loads((out / "results.json").read_text())
    assert {name: s["status"] for name, s in results["steps"].items()} == dict.fromkeys(
        ["data", "train", "export", "library", "evaluate", "latency", "test"], "ok")
    assert list(results["steps"]) == ["data", "train", "export", "library", "evaluate", "latency", "test"]
    # the source's levels rebuilt with the new weights, every latency record kept (the same sub-networks)
    rebuilt = SubnetLibrary.load(out / "library" / "library.json")  # verifies the files' SHA-256
    assert [r["source_level"] for r in results["library"]["levels"]] == ["L0", "L4"]
    assert [r["source_top1"] for r in results["library"]["levels"]] == [lv["top1"] for lv in shipped["levels"][::4]]
    assert results["library"]["kept"] == len(rebuilt.levels) >= 1
    by_arch = {lv["arch"]["resolution"]: lv for lv in shipped["levels"][::4]}
    for level in rebuilt.levels:
        assert level.arch.to_dict() == by_arch[level.arch.resolution]["arch"]
        assert [p.to_dict() for p in level.latency] == by_arch[level.arch.resolution]["latency"]
    assert {lv.top1 for lv in rebuilt.levels} <= {r["test_top1"] for r in results["library"]["levels"]}
    assert rebuilt.heads is not None and "folded" in rebuilt.calibration
    assert torch.equal(load_supernet(rebuilt.checkpoint_path)[0].state_dict()["classifier.linear.weight"],
                       load_supernet(out / "supernet.pt")[0].state_dict()["classifier.linear.weight"])
    assert results["data"] == {"train_y": 32, "val_y": 20, "test_y": 20}
    assert results["checkpoint"]["sha256"] == sha256_file(out / "supernet.pt")  # search checks it
    assert len(results["candidates"]) == 3
    largest, smallest = results["candidates"][:2]
    assert largest["macs"] > smallest["macs"] > 0 and largest["params"] > smallest["params"]
    assert all(0.0 <= c["val_top1"] <= 1.0 and 0 < c["latency"]["p50_s"] <= c["latency"]["p90_s"]
               for c in results["candidates"])
    assert set(results["test"]) == {"largest", "smallest"}
    assert all(0.0 <= r["train_top1"] <= 1.0 and r["images"] == 20 for r in results["test"].values())
    # test figures calibrated like a library's levels (all 32 training images here), not on --n-calib
    assert all(r["n_calib"] == 32 and "folded" in r["bn_tuning"] for r in results["test"].values())
    # the source's L0 and L4 are the smallest and largest sub-networks: their test figures are the library step's
    by_level = {r["source_level"]: r["test_top1"] for r in results["library"]["levels"]}
    assert [results["test"][n]["test_top1_from"] for n in ("smallest", "largest")] == [
        "the library step's L0", "the library step's L4"]
    assert [results["test"][n]["test_top1"] for n in ("smallest", "largest")] == [by_level["L0"], by_level["L4"]]
    # a fixed schedule goes on in a later call, from the state the previous call returned ...
    fixed = [*common, "--schedule", "fixed", "--epochs", "50", "--max-subnets", "2"]
    assert gpu_job.main([*fixed, "--out", str(tmp_path / "first")]) == 0
    assert gpu_job.main([*fixed, "--out", str(tmp_path / "next"), "--resume-from", str(tmp_path / "first")]) == 0
    assert read_progress(tmp_path / "next")["step"] > read_progress(tmp_path / "first")["step"]
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    assert "library" not in first["steps"] and {r["test_top1_from"] for r in first["test"].values()} == {"this step"}
    # ... but not with a schedule that would jump: training fails, nothing is exported or measured, the job says so
    bad = [*common, "--epochs", "60", "--schedule", "fixed", "--resume-from", str(tmp_path / "first")]
    assert gpu_job.main([*bad, "--out", str(tmp_path / "bad")]) == 1
    steps = json.loads((tmp_path / "bad" / "results.json").read_text())["steps"]
    assert steps["train"]["status"] == steps["export"]["status"] == "error"
    assert {steps[n]["status"] for n in ("evaluate", "latency", "test")} == {"skipped"}
    assert "epochs=50 (now 60)" in steps["train"]["error"] and not (tmp_path / "bad" / "supernet.pt").exists()
    # a budget-fitted cycle is not continued but restarted from the weights (--init)
    assert gpu_job.main([*common, "--out", str(tmp_path / "fit"), "--resume-from", str(out)]) == 1
    error = json.loads((tmp_path / "fit" / "results.json").read_text())["steps"]["train"]["error"]
    assert "use --init" in error

    shipped = load_supernet(out / "supernet.pt")[0].state_dict()["classifier.linear.weight"]
    continued = initial_supernet(SupernetSpec(), out / "supernet.pt")
    assert continued.training and torch.equal(continued.state_dict()["classifier.linear.weight"], shipped)
