"""Front interpolation on hand-made points, latency merging, and the comparison end to end at tiny scale."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from dynofa_ros.datasets.image_dataset import load_dataset
from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline.bn_tuning import BnTuneConfig
from dynofa_ros.offline.calibrate import calibrate_bn
from dynofa_ros.offline.evaluate import accuracy, subnet_cost
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.heads import final_linear
from dynofa_ros.supernet.library import Level
from dynofa_ros.supernet.library_write import write_library
from experiments import baseline_gpu_job
from experiments.compare import (
    COMPARE_FORMAT,
    Point,
    accuracy_at,
    baseline_levels,
    compare_fronts,
    front_points,
    latency_at,
    merge_latency,
)
from experiments.compare import main as compare

from ..data_util import cifar_split_folder


def test_front_points_drop_dominated_points() -> None:
    points = [(3.0, 0.9), (1.0, 0.7), (2.0, 0.65), (2.5, 0.9), (1.0, 0.6), (4.0, 0.95)]
    assert front_points(points) == [(1.0, 0.7), (2.5, 0.9), (4.0, 0.95)]
    assert front_points([]) == []


def test_interpolation_on_the_front_and_outside_it() -> None:
    front = [(1.0, 0.7), (3.0, 0.9)]
    assert latency_at(front, 0.8) == pytest.approx(2.0)
    assert accuracy_at(front, 1.5) == pytest.approx(0.75)
    assert latency_at(front, 0.95) is None and accuracy_at(front, 0.5) is None


def test_constant_speedup_and_gain() -> None:
    ours, other = [(1.0, 0.8), (2.0, 0.9)], [(2.0, 0.8), (4.0, 0.9)]
    c = compare_fronts(ours, other, "width-only", "cpu-1t")
    assert c.accuracy_overlap == (0.8, 0.9)
    assert [round(row[3], 9) for row in c.speedup] == [2.0, 2.0]
    assert c.latency_overlap == (2.0, 2.0)
    assert c.gain == [pytest.approx((2.0, 0.9, 0.8, 0.1))]
    assert c.dominated == (2, 2)


def test_interpolated_speedup_and_gain_only_inside_the_overlap() -> None:
    ours = [(1.0, 0.7), (3.0, 0.9)]
    other = [(2.0, 0.6), (4.0, 0.8), (8.0, 0.95)]
    c = compare_fronts(ours, other)
    # accuracy overlap 0.7..0.9: theirs 3 ms vs 1 ms at 70 %, 4 vs 2 at 80 %, 6.667 vs 3 at 90 %
    assert [a for a, *_ in c.speedup] == pytest.approx([0.7, 0.8, 0.9])
    assert [r for *_, r in c.speedup] == pytest.approx([3.0, 2.0, (4 + 4 * 0.1 / 0.15) / 3])
    # latency overlap 2..3 ms: +20 points at both ends
    assert [(lat, g) for lat, _, _, g in c.gain] == [pytest.approx((2.0, 0.2)), pytest.approx((3.0, 0.2))]
    assert c.summary("speedup")["median"] == pytest.approx(2.2222, rel=1e-3)
    assert c.dominated == (2, 3)  # their 8 ms / 95 % point is beyond our front


def test_disjoint_fronts_report_nothing() -> None:
    c = compare_fronts([(1.0, 0.5), (2.0, 0.6)], [(5.0, 0.8), (6.0, 0.9)])
    assert c.accuracy_overlap is None and c.latency_overlap is None
    assert c.summary("speedup") is None and c.summary("gain") is None and c.dominated == (0, 2)
    with pytest.raises(ValueError, match="at least one point"):
        compare_fronts([], [(1.0, 0.5)])


def test_merge_latency_matches_same_networks_only() -> None:
    points = [Point("static", "a", 32, 0.5, 1, 1, "a.pt#1", {}, {"cpu-1t": {"p50_s": 1.0}}),
              Point("static", "b", 32, 0.5, 1, 1, "b.pt#2", {})]
    other = {"format": COMPARE_FORMAT, "points": [
        {"approach": "static", "name": "a", "source": "a.pt#1", "latency": {"gpu": {"p50_s": 0.1},
                                                                            "cpu-1t": {"p50_s": 9.0}}},
        {"approach": "static", "name": "b", "source": "b.pt#OTHER", "latency": {"gpu": {"p50_s": 0.2}}}]}
    assert merge_latency(points, other, "gpu.json") == ["gpu"]
    assert points[0].latency["gpu"]["merged_from"] == "gpu.json"
    assert points[0].latency["cpu-1t"] == {"p50_s": 1.0}  # measured here: kept
    assert "gpu" not in points[1].latency  # other weights under the same name: not merged
    with pytest.raises(ValueError, match="not a comparison result"):
        merge_latency(points, {"format": "x"}, "x.json")
    with pytest.raises(ValueError, match="none of these networks"):
        merge_latency(points[1:], other | {"points": other["points"][:1]}, "gpu.json")


@pytest.fixture(scope="module")
def tiny_inputs(cifar_tiny_dir: Path, tiny_trained, tiny_spec, tmp_path_factory) -> dict[str, Path]:
    """CIFAR-10 data of the 300 tiny images (train = test) and a two-level library of the one-step supernet."""
    root = tmp_path_factory.mktemp("compare")
    images = load_image_folder(cifar_tiny_dir)[0]
    cifar_split_folder(cifar_tiny_dir, root / "data")
    supernet = copy.deepcopy(tiny_trained[0])
    archs = [SubnetArch.smallest(tiny_spec), SubnetArch.largest(tiny_spec)]
    stats = [calibrate_bn(supernet, a, images, n=32, batch=32, spec=tiny_spec) for a in archs]
    levels = [Level(f"L{i}", a, None, *subnet_cost(supernet, a)) for i, a in enumerate(archs)]
    write_library(root / "lib", "tiny", supernet, tiny_spec, levels, stats)
    return {"data": root / "data", "library": root / "lib" / "library.json", "root": root}


def test_gpu_job_and_compare_end_to_end_tiny(tiny_inputs: dict[str, Path]) -> None:
    torch.manual_seed(0)
    root = tiny_inputs["root"]
    common = ["--data", str(tiny_inputs["data"]), "--device", "cpu", "--resolutions", "32", "--epochs", "1",
              "--batch-size", "16", "--max-train-images", "32", "--val-size", "50", "--n-calib", "16",
              "--eval-every", "0", "--library", str(tiny_inputs["library"]), "--eval-limit", "40",
              "--compare-warmup", "1", "--compare-repeats", "2", "--compare-rounds", "1"]
    assert baseline_gpu_job.main(["--approach", "width-only", "--layout", "mobilenet_v3_small",
                                  "--out", str(root / "us"), *common]) == 0
    us = root / "us" / "us-mbv3-small.pt"
    assert us.is_file() and (root / "us" / "train_log_us-mbv3-small.jsonl").is_file()
    assert baseline_gpu_job.main(["--approach", "static", "--static-refs", "mbv3-small-0.5", "--out",
                                  str(root / "static"), "--compare-with", str(us), *common]) == 0
    static = root / "static" / "mbv3-small-0.5.pt"
    job = json.loads((root / "static" / "results.json").read_text())
    assert all(step["status"] == "ok" for step in job["steps"].values())
    assert job["networks"]["mbv3-small-0.5"]["train"]["epochs"] == 1
    job_compare = json.loads((root / "static" / "compare_gpu.json").read_text())
    assert {p["approach"] for p in job_compare["points"]} == {"dynamic-ofa", "width-only", "static"}

    out = root / "compare"
    rc = compare(["--library", str(tiny_inputs["library"]), "--baselines", str(us), str(static),
                  "--widths", "0.35", "1.0", "--profiles", "cpu-2t",
                  "--merge", str(root / "static" / "compare_gpu.json"),
                  "--data", str(tiny_inputs["data"]), "--val-size", "50", "--n-calib", "16",
                  "--max-test-images", "60", "--warmup", "1", "--repeats", "2", "--rounds", "1", "--out", str(out)])
    assert rc == 0
    result = json.loads((out / "compare.json").read_text())
    assert [p["approach"] for p in result["points"]] == ["dynamic-ofa"] * 2 + ["width-only"] * 2 + ["static"]
    assert result["test_images"] == 60
    for p in result["points"]:
        assert 0.0 <= p["top1"] <= 1.0 and p["macs"] > 0
        assert p["latency"]["cpu-2t"]["threads"] == 2
        assert p["latency"]["cpu-1t"]["merged_from"].endswith("compare_gpu.json")  # timed by the job
    assert {(c["profile"], c["other"]) for c in result["comparisons"]} == {
        (p, o) for p in ("cpu-1t", "cpu-2t") for o in ("width-only", "static")}
    assert "| width-only | us-mbv3-small-w0.35-r32 | 32 |" in (out / "compare.md").read_text()
    assert (out / "compare.png").stat().st_size > 1000
    assert compare(["--library", str(tiny_inputs["library"]), "--baselines", str(root / "nope.pt"),
                    "--data", str(tiny_inputs["data"]), "--out", str(out)]) == 2
    # this library shares one classifier, so the baselines kept theirs; against per-level heads they get their own
    assert result["heads"] is False and "fitted like the library's" not in (out / "compare.md").read_text()
    data = load_dataset(tiny_inputs["data"])
    calib_x, calib_y = data.train_x[:40], data.train_y[:40]
    shared, fitted = (baseline_levels(us, calib_x, 16, [1.0], y)[0] for y in (None, calib_y))
    assert final_linear(shared.net).weight.shape == final_linear(fitted.net).weight.shape
    on_fit = [accuracy(lv.net, calib_x, calib_y, lv.resolution, lv.mean, lv.std) for lv in (shared, fitted)]
    assert on_fit[1] > on_fit[0]  # a one-epoch network: its own head fits the 40 images better
    assert result["bn_tuning"] is None  # nor is its BN tuned, so the baselines' is not either
    # against a library whose levels' BN scale/shift were tuned, the baselines' are too: folded into their
    # statistics, the weights untouched
    tuned = baseline_levels(us, calib_x, 16, [1.0], calib_y, BnTuneConfig(epochs=2, batch_size=20))[0]
    head_name = next(n for n, m in fitted.net.named_modules() if m is final_linear(fitted.net))
    weights, tuned_weights = dict(fitted.net.named_parameters()), dict(tuned.net.named_parameters())
    body = [n for n in weights if not n.startswith(f"{head_name}.")]
    assert body and all(torch.equal(weights[n], tuned_weights[n]) for n in body)
    assert not all(torch.equal(a, b) for a, b in zip(fitted.net.buffers(), tuned.net.buffers(), strict=True))
    with pytest.raises(ValueError, match="calib_y"):
        baseline_levels(us, calib_x, 16, [1.0], None, BnTuneConfig())
