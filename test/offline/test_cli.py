"""The ``dynofa`` tool end to end on a tiny slice: pipeline (either supernet family), GPU candidates, calibrate, plot,
errors."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.datasets.image_dataset import load_dataset
from dynofa_ros.offline.cli import COMMANDS, build_parser, main
from dynofa_ros.offline.data import subset
from dynofa_ros.offline.evaluate import top1
from dynofa_ros.offline.library_build import is_monotone
from dynofa_ros.offline.plots import pareto_title
from dynofa_ros.offline.profile import LatencyLUT
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.bn import apply_bn_stats, load_bn_stats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.family import Spec, family_of
from dynofa_ros.supernet.heads import load_heads, using_head
from dynofa_ros.supernet.library import SubnetLibrary, sha256_file
from dynofa_ros.supernet.serving import onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.synthetic import TINY_VIT_SPEC

from ..data_util import cifar_split_folder

# one thread throughout: on a shared 2-core machine two-thread runs can stall for seconds
QUICK_PROFILE = "--profiles cpu-1t --resolutions 40 --fit 3 --holdout 2 --warmup 1 --repeats 3 --rounds 1"
QUICK_VIT_PROFILE = "--profiles cpu-1t --resolutions 32 --fit 4 --holdout 3 --warmup 1 --repeats 3 --rounds 1"
QUICK_VIT_TRAIN = "--epochs 1 --max-train-images 32 --batch-size 16 --eval-every 0 --device cpu"
SEARCH_BUDGET = "--constraints 3 --population 10 --generations 2 --warmup 1 --repeats 3 --n-calib 40 --val-size 100"
QUICK_SEARCH = "--random-candidates 14 " + SEARCH_BUDGET
# no heads: fitted on 200 images of a one-step supernet they make the smallest level the most accurate one
BUILT_LEVELS = 3
QUICK_BUILD = (f"--profiles cpu-1t --levels {BUILT_LEVELS} --warmup 1 --repeats 4 --rounds 2 --n-calib 40 "
               "--val-size 100 --max-test-images 60 --no-heads")

TIMED_BACKENDS = ("torch", "onnxruntime") if onnxruntime_installed() else ("torch",)  # build-library's default


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_data(cifar_tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 data (ImageFolder train/ and test/): the 300 tiny images as train and 150 of them as test."""
    return cifar_split_folder(cifar_tiny_dir, tmp_path_factory.mktemp("data"), test_every=2)


def _run_pipeline(work: Path, tiny_data: Path, *options: str) -> Path:
    """Run ``dynofa pipeline`` with ``options`` on the tiny data into ``work`` (no GPU candidates: subnets evaluated
    here; library in ``lib/``, plot ``pareto.png``); its standard output is in ``stdout.txt`` there."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["pipeline", "--work", str(work), "--out", str(work / "lib"), "--plot", str(work / "pareto.png"),
                   "--data", str(tiny_data), *options, "--search-args", QUICK_SEARCH,
                   "--build-library-args", QUICK_BUILD])
    print(printed.getvalue())  # shown with a failing test
    (work / "stdout.txt").write_text(printed.getvalue())
    assert rc == 0
    return work


@pytest.fixture(scope="module")
def pipeline_run(tiny_trained: tuple[torch.nn.Module, Path], tiny_data: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Work folder of the pipeline from the one-step MobileNetV3 supernet's checkpoint (adapt first)."""
    return _run_pipeline(tmp_path_factory.mktemp("pipeline"), tiny_data, "--checkpoint", str(tiny_trained[1]),
                         "--profile-args", QUICK_PROFILE)


@pytest.fixture(scope="module")
def vit_pipeline_run(tiny_vit_checkpoint: Path, tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Work folder of the pipeline without a checkpoint: it trains the tiny elastic ViT (from random weights, two
    steps) first, and has no adapt stage to take ``--adapt-args``."""
    return _run_pipeline(tmp_path_factory.mktemp("vit_pipeline"), tiny_data, "--val-size", "100", "--profile-args",
                         QUICK_VIT_PROFILE, "--train-args", f"--init {tiny_vit_checkpoint} {QUICK_VIT_TRAIN}",
                         "--adapt-args", "--n-calib 10")


@dataclass(frozen=True)
class PipelineCase:
    """A pipeline run of one supernet family: its fixture, first stage, spec and the one resolution it profiled."""

    fixture: str
    first_stage: str
    spec: Spec
    resolution: int


PIPELINES = {case.spec.family: case for case in (
    PipelineCase("pipeline_run", "adapt", SupernetSpec(resolutions=(32, 40)), 40),
    PipelineCase("vit_pipeline_run", "train", TINY_VIT_SPEC, 32),
)}


def test_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd.name in out for cmd in COMMANDS)
    for cmd in COMMANDS:
        with pytest.raises(SystemExit):
            main([cmd.name, "--help"])
        assert "usage: dynofa " + cmd.name in capsys.readouterr().out


@pytest.mark.parametrize("family", PIPELINES)
def test_pipeline_writes_a_valid_library(family: str, request: pytest.FixtureRequest) -> None:
    case = PIPELINES[family]
    pipeline_run = request.getfixturevalue(case.fixture)
    lib = SubnetLibrary.load(pipeline_run / "lib" / "library.json")
    assert lib.spec == case.spec
    # how many levels are built and stay depends on timing noise (the size of the search's front) and on at-chance
    # top-1s of a one-step supernet; what holds: up to --levels of the front are built, each one is kept or
    # reported dropped, and at least one is kept
    search = json.loads((pipeline_run / "search.json").read_text())
    printed = (pipeline_run / "stdout.txt").read_text()
    assert f"== dynofa {case.first_stage} " in printed
    assert ("note: --adapt-args not used" in printed) == (case.first_stage == "train")
    built = len(re.findall(rf"^built r{case.resolution} ", printed, re.MULTILINE))
    dropped = re.search(r"^dropped (\d+) level", printed, re.MULTILINE)
    assert built == min(BUILT_LEVELS, len(search["front"]))
    assert 1 <= len(lib.levels) == built - (int(dropped[1]) if dropped else 0)
    # top-1 rises strictly; latency may dip by the timing noise two kept levels are allowed (LATENCY_NOISE)
    assert is_monotone([lv.latency_for("cpu-1t").p50_s for lv in lib.levels], [lv.top1 for lv in lib.levels])
    for lv in lib.levels:
        assert [(p.profile, p.backend) for p in lv.latency] == [("cpu-1t", b) for b in TIMED_BACKENDS]
        assert lv.macs > 0 and lv.params > 0
        assert lv.arch.resolution == case.resolution and lv.latency_for("cpu-1t").threads == 1
        assert "median" in lv.latency_for("cpu-1t").method and lv.latency_for("cpu-1t").processor
    assert lib.eval_set == "cifar10-test (60 images)" and lib.heads is None
    if family_of(lib.spec).bn_statistics:
        assert "40 cifar10-train" in lib.calibration and len(load_bn_stats(lib.bn_stats_path)) == len(lib.levels)
    else:  # --n-calib (in QUICK_BUILD) has nothing to calibrate
        assert lib.bn_stats is None and not lib.calibration
        assert f"note: {family} levels have no BN statistics to calibrate: --n-calib not used" in printed
    assert search["predictor"]["n_test"] >= 2 and search["front"]
    assert all(p["cpu"]["p50_s"] > 0 and p["lut_s"] > 0 for p in search["points"])
    # profiled and searched with the backend the perception node serves with: onnxruntime when it is installed
    lut = LatencyLUT.load(pipeline_run / "profile" / "lut_cpu-1t.json")
    assert lut.backends == TIMED_BACKENDS and search["backend"] == TIMED_BACKENDS[-1]
    assert search["lut"]["error_profile_run"] == lut.predictor(search["backend"]).error
    assert (pipeline_run / "pareto.png").stat().st_size > 10_000
    assert family_of(lib.spec).title in pareto_title(search)
    assert (pipeline_run / "profile" / "profile_report.json").is_file()

    from dynofa_ros.supernet.runtime import DynamicNetwork

    net = DynamicNetwork.from_library(pipeline_run / "lib" / "library.json")
    net.request_level(len(lib.levels) - 1)
    assert net.predict(torch.zeros(2, 3, case.resolution, case.resolution)).shape == (2, 10)


def _recorded_top1_is_what_the_files_give(lib: SubnetLibrary, tiny_data: Path, n_test: int) -> None:
    data = load_dataset(tiny_data)
    pick = subset(np.arange(len(data.test_y)), n_test, 0)
    supernet, spec = load_supernet(lib.checkpoint_path)
    heads = load_heads(lib.heads_path) if lib.heads_path else [None] * len(lib.levels)
    for lv, stats, head in zip(lib.levels, load_bn_stats(lib.bn_stats_path), heads, strict=True):
        apply_bn_stats(supernet, stats)
        with using_head(supernet, head):
            assert lv.top1 == top1(supernet, lv.arch, data.test_x[pick], data.test_y[pick], spec)


def test_calibrate_rewrites_bn_stats_and_heads_and_retests(pipeline_run: Path, tiny_data: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "lib"
    shutil.copytree(pipeline_run / "lib", folder)  # the pipeline's own library stays as built
    path = folder / "library.json"
    before = SubnetLibrary.load(path)
    quick = ["--val-size", "100", "--max-test-images", "50", "--data", str(tiny_data)]
    assert main(["calibrate", "--library", str(path), "--n-calib", "20", *quick]) == 0
    lib = SubnetLibrary.load(path)  # verifies the new SHA-256s
    assert lib.bn_stats.sha256 != before.bn_stats.sha256 and lib.bn_stats.sha256 == sha256_file(lib.bn_stats_path)
    assert before.heads is None and lib.heads.sha256 == sha256_file(folder / "heads.pt")
    assert "200 cifar10-train images and their mirror images" in lib.heads_fit  # 300 - 100 held out
    assert lib.calibration.startswith("20 cifar10-train") and lib.eval_set == "cifar10-test (50 images)"
    # the recorded top-1 is the one the stored statistics and heads give on those 50 test images ...
    _recorded_top1_is_what_the_files_give(lib, tiny_data, 50)
    # ... and only the statistics, heads and top-1 changed
    assert [(lv.name, lv.arch, lv.latency) for lv in lib.levels] == [(lv.name, lv.arch, lv.latency)
                                                                      for lv in before.levels]
    out = capsys.readouterr().out
    assert f"L0: test top-1 {before.levels[0].top1 * 100:.2f} % -> {lib.levels[0].top1 * 100:.2f} %" in out
    assert "trained their BN scale/shift (3 epochs) and fitted their heads on 200 images" in out
    assert "validation split" in out and "folded into its statistics" in lib.calibration
    assert "from the classifier trained with the level's BN scale/shift" in lib.heads_fit
    assert "note: the recorded top-1 is now on 50 of the 150 test images" in out

    assert main(["calibrate", "--library", str(path), "--n-calib", "20", "--no-heads", "--tune-bn-epochs", "1",
                 *quick]) == 2
    assert "needs --heads" in capsys.readouterr().err
    assert main(["calibrate", "--library", str(path), "--n-calib", "20", "--no-heads", *quick]) == 0
    shared = SubnetLibrary.load(path)
    assert "folded" not in shared.calibration  # --no-heads: no BN tuning either
    assert shared.heads is None and "heads" not in json.loads(path.read_text())
    assert not (folder / "heads.pt").exists()  # nothing left that the library does not name
    _recorded_top1_is_what_the_files_give(shared, tiny_data, 50)


def test_search_and_build_with_gpu_candidates(pipeline_run: Path, tiny_trained: tuple[torch.nn.Module, Path],
                                              tiny_data: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = SupernetSpec(resolutions=(32, 40))
    rng = random.Random(0)
    cands = []
    for i in range(16):
        arch = SubnetArch.sample(spec, rng)
        blocks = sum(arch.d)
        cand = {"arch": arch.to_dict(), "val_top1": 0.1 + 0.01 * blocks, "macs": 10**6 * blocks, "params": 10**6}
        if i % 2:
            cand["latency"] = {"p50_s": 0.001 * blocks, "p90_s": 0.0012 * blocks}
        cands.append(cand)
    results = tmp_path / "results.json"
    job = {"env": {"device": "cuda", "gpu": "NVIDIA H200"}, "spec": spec.to_dict(), "latency_method": "batch 1",
           "candidates": cands, "args": {"seed": 0, "val_size": 100}}
    results.write_text(json.dumps(job))
    data = ["--data", str(tiny_data)]
    assert main(["search", "--checkpoint", str(tiny_trained[1]), "--lut", str(pipeline_run / "profile" /
                 "lut_cpu-1t.json"), "--candidates", str(results), "--out", str(tmp_path / "search.json"),
                 *SEARCH_BUDGET.split(), *data]) == 0
    assert "does not record which checkpoint" in capsys.readouterr().out
    if onnxruntime_installed():  # a LUT file profiled before the other backends had predictors
        old = json.loads((pipeline_run / "profile" / "lut_cpu-1t.json").read_text())
        del old["predictors"]
        (tmp_path / "old_lut.json").write_text(json.dumps(old))
        assert main(["search", "--checkpoint", str(tiny_trained[1]), "--lut", str(tmp_path / "old_lut.json"),
                     "--backend", "onnxruntime", *data]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "old_lut.json: latency LUT cpu-1t has no onnxruntime predictor" in err
        assert "`dynofa profile --profiles cpu-1t --backends torch onnxruntime`" in err
    search = json.loads((tmp_path / "search.json").read_text())
    # only the resolution-40 candidates fit the LUT; those are kept, plus what the search found
    assert {p["source"] for p in search["points"]} <= {"candidate", "search"}
    assert all(p["arch"]["resolution"] == 40 for p in search["points"])
    assert all(p["gpu"]["processor"] == "NVIDIA H200" for p in search["points"])
    results.write_text(json.dumps({**job, "checkpoint": {"sha256": "0" * 64}}))
    assert main(["search", "--checkpoint", str(tiny_trained[1]), "--candidates", str(results), "--lut",
                 str(pipeline_run / "profile" / "lut_cpu-1t.json"), "--val-size", "100", *data]) == 2
    assert "evaluated another checkpoint" in capsys.readouterr().err
    results.write_text(json.dumps({**job, "args": {"seed": 1, "val_size": 100}}))
    assert main(["search", "--checkpoint", str(tiny_trained[1]), "--candidates", str(results), "--lut",
                 str(pipeline_run / "profile" / "lut_cpu-1t.json"), "--val-size", "100", *data]) == 2
    assert "--split-seed 1" in capsys.readouterr().err
    assert main(["build-library", "--checkpoint", str(tiny_trained[1]), "--search", str(tmp_path / "search.json"),
                 "--out", str(tmp_path / "lib"), *QUICK_BUILD.split(), *data]) == 0
    lib = SubnetLibrary.load(tmp_path / "lib" / "library.json")
    for lv in lib.levels:
        gpu = lv.latency_for("gpu")
        assert gpu is not None and gpu.method.split(":")[0] in ("measured", "predicted")
        assert lv.latency_for("cpu-2t") is None and len(lv.latency) == 1 + len(TIMED_BACKENDS)
    assert main(["plot", "--search", str(tmp_path / "search.json"), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").is_file()

    # new weights for the same levels: no search; the GPU records carry over, the rest is measured again
    assert main(["build-library", "--checkpoint", str(tiny_trained[1]), "--levels-from",
                 str(tmp_path / "lib" / "library.json"), "--out", str(tmp_path / "again"), *QUICK_BUILD.split(),
                 *data]) == 0
    before = {lv.arch: lv for lv in lib.levels}
    again = SubnetLibrary.load(tmp_path / "again" / "library.json")
    assert again.levels and all(lv.arch in before for lv in again.levels)
    for lv in again.levels:  # same weights, same calibration and test images: the same top-1
        assert lv.top1 == pytest.approx(before[lv.arch].top1)
        assert lv.latency_for("gpu") == before[lv.arch].latency_for("gpu")
        assert len(lv.latency) == 1 + len(TIMED_BACKENDS)
    assert main(["build-library", "--checkpoint", str(tiny_trained[1]), "--levels-from",
                 str(tmp_path / "again" / "library.json"), "--out", str(tmp_path / "again"), *data]) == 2
    assert "folder of --levels-from" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["build-library", "--checkpoint", str(tiny_trained[1]), "--levels-from",
                 str(Path(__file__).parents[2] / "models" / "cifar10_mbv3" / "library.json"),
                 "--out", str(tmp_path / "never"), *data]) == 2
    assert "spec differs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["build-library", "--checkpoint", "x.pt", "--search", "s.json", "--levels-from", "l.json"])


def test_evaluate_reproduces_the_library_and_sweeps_resolutions(pipeline_run: Path, tiny_data: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = pipeline_run / "lib" / "library.json"
    lib = SubnetLibrary.load(path)
    data = ["--val-size", "100", "--data", str(tiny_data)]
    # the same split, subset and calibration as build-library: the same top-1 as the library records
    assert main(["evaluate", "--library", str(path), "--max-images", "60", "--n-calib", "40",
                 "--out", str(tmp_path / "test.json"), *data]) == 0
    records = json.loads((tmp_path / "test.json").read_text())["records"]
    assert [r["name"] for r in records] == [lv.name for lv in lib.levels]
    assert [r["top1"] for r in records] == pytest.approx([lv.top1 for lv in lib.levels])
    assert all(r["split"] == "test" and r["images"] == 60 and r["n_calib"] == 40 and r["macs"] == lv.macs
               for r, lv in zip(records, lib.levels, strict=True))

    out = tmp_path / "sweep.json"
    assert main(["evaluate", "--library", str(path), "--subnets", "L0", "largest", "--resolutions", "32", "48",
                 "--split", "train", "--max-images", "50", "--n-calib", "20", "--latency", "cpu-1t",
                 "--repeats", "3", "--out", str(out), *data]) == 0
    printed = capsys.readouterr().out
    assert "note: [48] px are outside the trained resolutions [32, 40]" in printed
    records = json.loads(out.read_text())["records"]
    assert [r["name"] for r in records] == ["L0@32", "L0@48", "largest@32", "largest@48"]
    assert [r["arch"]["resolution"] for r in records] == [32, 48, 32, 48]
    assert records[0]["macs"] < records[1]["macs"]  # MACs grow with the input size
    assert all(r["split"] == "train" and r["images"] == 50 and 0 <= r["top1"] <= 1 for r in records)
    assert all(r["latency"]["cpu-1t"]["p50_s"] > 0 for r in records)
    assert "L0@48" in printed and "cpu-1t p50" in printed

    assert main(["evaluate", "--library", str(path), "--subnets", "L9", *data]) == 2
    assert "L9" in capsys.readouterr().err
    assert main(["evaluate", "--library", str(path), "--resolutions", "16", *data]) == 2
    assert "below 32 px" in capsys.readouterr().err


def test_build_library_fits_heads_and_evaluate_reproduces_them(pipeline_run: Path, tiny_data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out, source = tmp_path / "lib", pipeline_run / "lib"
    data = ["--val-size", "100", "--data", str(tiny_data)]
    assert main(["build-library", "--checkpoint", str(source / "supernet.pt"), "--levels-from",
                 str(source / "library.json"), "--out", str(out), "--profiles", "cpu-1t", "--warmup", "1",
                 "--repeats", "2", "--rounds", "1", "--n-calib", "40", "--max-test-images", "60", *data]) == 0
    lib = SubnetLibrary.load(out / "library.json")
    assert len(load_heads(lib.heads_path)) == len(lib.levels) >= 1 and "200 cifar10-train" in lib.heads_fit
    _recorded_top1_is_what_the_files_give(lib, tiny_data, 60)
    # the same split, subset, calibration and fit: evaluate --fit-heads gives the library's top-1 ...
    assert main(["evaluate", "--library", str(out / "library.json"), "--max-images", "60", "--n-calib", "40",
                 "--fit-heads", "--out", str(tmp_path / "heads.json"), *data]) == 0
    records = json.loads((tmp_path / "heads.json").read_text())["records"]
    assert [r["top1"] for r in records] == pytest.approx([lv.top1 for lv in lib.levels])
    assert all(r["heads"] == "fitted per subnet" and "folded" in r["bn_tuning"] for r in records)
    # ... and without it, says that its figures use the shared classifier
    capsys.readouterr()
    assert main(["evaluate", "--library", str(out / "library.json"), "--max-images", "60", "--n-calib", "40",
                 *data]) == 0
    assert "note: the library's levels have their own classifier heads" in capsys.readouterr().out
    assert main(["evaluate", "--library", str(out / "library.json"), "--tune-bn-epochs", "1", *data]) == 2
    assert "needs --fit-heads" in capsys.readouterr().err


def test_data_command_reports_the_data(tiny_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "--data", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "train: 300 images (32, 32, 3) uint8, 30-30 per class" in out and "test: 150 images" in out
    assert main(["data", "--data", "/nonexistent.tar.gz"]) == 2
    assert "/nonexistent.tar.gz" in capsys.readouterr().err


def test_bad_inputs_exit_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-library", "--checkpoint", str(tmp_path / "none.pt"), "--search",
                 str(tmp_path / "none.json")]) == 2
    assert "search result not found" in capsys.readouterr().err
    assert main(["profile", "--profiles", "cpu-xt", "--out", str(tmp_path)]) == 2
    assert "unknown CPU profile" in capsys.readouterr().err
    assert main(["pipeline", "--checkpoint", str(tmp_path / "none.pt"), "--train-args", "--epochs 1"]) == 2
    assert "--train-args: the pipeline trains a supernet only without --checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search"])  # --checkpoint is required
