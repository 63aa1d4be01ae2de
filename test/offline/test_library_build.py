"""Library building: level ordering/monotonicity, search-file validation, spec mismatch, and a whole build of an
elastic ViT library from a search result.

The full OFA build on a tiny slice (files written, validated and loaded by the runtime) runs in test_cli.py.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dynofa_ros.datasets.image_dataset import load_dataset
from dynofa_ros.offline.cli import main
from dynofa_ros.offline.commands import build_library
from dynofa_ros.offline.data import subset, to_input
from dynofa_ros.offline.evaluate import top1
from dynofa_ros.offline.library_build import LATENCY_NOISE, is_monotone, load_search, monotone_levels
from dynofa_ros.offline.search import SEARCH_FORMAT
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.family import ELASTIC_VIT
from dynofa_ros.supernet.library import SubnetLibrary
from dynofa_ros.supernet.runtime import DynamicNetwork, extract_subnet
from dynofa_ros.supernet.serving import AUTO, ONNXRUNTIME, TORCH, onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.synthetic import TINY_VIT_SPEC
from dynofa_ros.supernet.vit_arch import ViTArch, vit_macs, vit_params

BACKENDS = (TORCH, ONNXRUNTIME) if onnxruntime_installed() else (TORCH,)  # build-library's default
VIT_BUILD = ["--profiles", "cpu-1t", "--warmup", "1", "--repeats", "4", "--rounds", "2", "--val-size", "20",
             "--max-test-images", "60"]


def test_monotone_levels_orders_levels_and_drops_dominated() -> None:
    latency = [9.0, 3.0, 5.0, 7.0, 4.0]
    accuracy = [0.90, 0.70, 0.80, 0.79, 0.70]
    assert monotone_levels(latency, accuracy) == [1, 2, 0]
    assert monotone_levels([1.0], [0.5]) == [0]
    assert monotone_levels([2.0, 1.0], [0.5, 0.5]) == [1]
    assert monotone_levels([1.0, 1.0], [0.5, 0.5]) == [0]


def test_monotone_levels_keeps_a_level_timed_within_the_noise_of_a_more_accurate_one() -> None:
    # the shipped L0 (r40) and L1 (r48) time within 2 % of each other; a re-timing that puts L0 1 % behind L1
    # must not drop it, while a level 10 % slower than a more accurate one still goes
    assert monotone_levels([4.65, 4.60, 5.4], [0.835, 0.839, 0.851]) == [0, 1, 2]
    assert monotone_levels([5.10, 4.60, 5.4], [0.835, 0.839, 0.851]) == [1, 2]
    assert monotone_levels([4.65, 4.60], [0.835, 0.839], noise=0.0) == [1]


def test_monotone_levels_result_passes_the_benchmark_monotonicity_goal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        latency, accuracy = rng.uniform(1, 2, 8), rng.choice(np.linspace(0.8, 0.9, 6), 8)
        kept = monotone_levels(latency, accuracy)
        assert kept, "some level is never redundant"
        for a, b in zip(kept, kept[1:]):
            assert accuracy[b] > accuracy[a]
            assert latency[b] >= latency[a] * (1 - LATENCY_NOISE)
        dropped = set(range(8)) - set(kept)
        assert all(any(accuracy[j] >= accuracy[i] and latency[j] <= latency[i] for j in kept) for i in dropped)


def test_load_search_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dynofa search"):
        load_search(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_search(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a `dynofa search` result"):
        load_search(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"format": SEARCH_FORMAT, "points": []}))
    assert load_search(tmp_path / "c.json")["points"] == []


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    build_library.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", "x.pt"])
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def test_build_refuses_a_search_of_another_supernet(tiny_trained: tuple[torch.nn.Module, Path],
                                                     tmp_path: Path) -> None:
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"format": SEARCH_FORMAT, "spec": SupernetSpec().to_dict(),
                                  "primary_profile": "cpu-1t", "points": [], "front": []}))
    with pytest.raises(ValueError, match="spec differs"):
        build_library.run(_args(checkpoint=tiny_trained[1], search=search, out=tmp_path / "lib"))
    with pytest.raises(ValueError, match="--levels"):
        build_library.run(_args(search=search, levels=1))
    with pytest.raises(ValueError, match="unknown CPU profile"):
        build_library.run(_args(search=search, profiles=["cpu"]))
    assert not (tmp_path / "lib").exists()


def test_levels_are_ranked_by_the_backend_that_serves_them(tmp_path: Path) -> None:
    from dynofa_ros.offline.library_build import levels_of_library
    from dynofa_ros.supernet.library import default_library_path
    from dynofa_ros.supernet.serving import AUTO, TORCH, resolve_backend

    library = default_library_path()
    served = resolve_backend(AUTO, "cpu")
    assert levels_of_library(library, ["cpu-1t"], [TORCH, served]).backend == served
    assert levels_of_library(library, ["cpu-1t"], ["other"]).backend == "other"
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"format": SEARCH_FORMAT, "spec": SupernetSpec().to_dict(), "backend": "onnxruntime",
                                  "primary_profile": "cpu-1t", "points": [], "front": []}))
    with pytest.raises(ValueError, match="onnxruntime latency; include it in --backends"):
        build_library.run(_args(search=search, backends=[TORCH]))


@pytest.fixture(scope="module")
def vit_data(tiny_vit_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Data options of random 32-px images as an ImageFolder: 100 train images, 10 per class, and 60 test images
    labelled with the predictions of the largest sub-network of the tiny ViT, so it is the most accurate level."""
    root = tmp_path_factory.mktemp("vit_data")
    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (100, 60))
    supernet, spec = load_supernet(tiny_vit_checkpoint)
    largest = spec.largest()
    ELASTIC_VIT.apply(supernet.eval(), largest)
    with torch.no_grad():
        predicted = supernet(to_input(torch.from_numpy(test), largest.resolution, spec.mean, spec.std)).argmax(1)
    for split, images, labels in (("train", train, np.arange(len(train)) % 10), ("test", test, predicted.numpy())):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / "data" / split / spec.class_names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    return ["--data", str(root / "data"), "--cache-dir", str(root / "cache")]


def _vit_search(path: Path, backend: str) -> Path:
    """A search result whose front is four tiny ViT sub-networks, ranked by ``backend`` on cpu-1t."""
    archs = [TINY_VIT_SPEC.smallest(), ViTArch(2, (1, 2), (1.0, 2.0), 24, 24), ViTArch(2, (2, 2), (2.0, 1.0), 32, 32),
             TINY_VIT_SPEC.largest()]
    points = [{"arch": a.to_dict(), "source": "candidate", "val_top1": 0.2 + 0.1 * i,
               "cpu": {"p50_s": 1e-3 * (i + 1), "p90_s": 1.1e-3 * (i + 1)}} for i, a in enumerate(archs)]
    path.write_text(json.dumps({"format": SEARCH_FORMAT, "family": TINY_VIT_SPEC.family,
                                "spec": TINY_VIT_SPEC.to_dict(), "primary_profile": "cpu-1t", "backend": backend,
                                "points": points, "front": list(range(len(points)))}))
    return path


def test_build_library_of_an_elastic_vit(tiny_vit_checkpoint: Path, vit_data: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    search, out = _vit_search(tmp_path / "search.json", BACKENDS[-1]), tmp_path / "lib"
    checkpoint = ["--checkpoint", str(tiny_vit_checkpoint)]
    assert main(["build-library", *checkpoint, "--search", str(search), "--out", str(out), "--levels", "4",
                 "--n-calib", "10", *VIT_BUILD, *vit_data]) == 0
    printed = capsys.readouterr().out
    assert "note: elastic_vit levels have no BN statistics to calibrate: --n-calib not used" in printed
    lib = SubnetLibrary.load(out / "library.json")  # checks the files' SHA-256
    assert lib.spec == TINY_VIT_SPEC and lib.name == "cifar10-elastic-vit-e32-d3"
    assert lib.bn_stats is None and lib.heads is None and lib.calibration == ""
    assert sorted(f.name for f in out.iterdir()) == ["library.json", "supernet.pt"]
    assert lib.eval_set == "cifar10-test (60 images)"
    dropped = re.search(r"^dropped (\d+) level", printed, re.MULTILINE)
    assert len(re.findall(r"^built r\d+ ", printed, re.MULTILINE)) == 4
    assert 2 <= len(lib.levels) == 4 - (int(dropped[1]) if dropped else 0)
    assert (lib.levels[-1].arch, lib.levels[-1].top1) == (TINY_VIT_SPEC.largest(), 1.0)
    # ordered by the serving backend's measured latency, top-1 rising (latency within the timing noise)
    assert is_monotone([lv.latency_for("cpu-1t", BACKENDS[-1]).p50_s for lv in lib.levels],
                       [lv.top1 for lv in lib.levels])
    data = load_dataset(vit_data[1], vit_data[3], progress=False)
    pick = subset(np.arange(len(data.test_y)), 60, 0)  # --max-test-images 60 of the 60: all of them
    supernet, spec = load_supernet(lib.checkpoint_path)
    for lv in lib.levels:
        assert [(p.profile, p.backend, p.threads) for p in lv.latency] == [("cpu-1t", b, 1) for b in BACKENDS]
        assert (lv.macs, lv.params) == (vit_macs(spec, lv.arch), vit_params(spec, lv.arch))
        assert lv.top1 == top1(supernet, lv.arch, data.test_x[pick], data.test_y[pick], spec)

    # served from the library: cache mode gives the extracted sub-networks' logits, in-place mode the same
    generator = torch.Generator().manual_seed(0)
    inputs = {r: torch.rand(2, 3, r, r, generator=generator) for r in spec.resolutions}
    with torch.no_grad():
        expected = [extract_subnet(supernet, lv.arch)(inputs[lv.arch.resolution]) for lv in lib.levels]
    for mode, backend, tolerance in (("cache", TORCH, 0.0), ("inplace", TORCH, 1e-5), ("cache", AUTO, 1e-4)):
        net = DynamicNetwork.from_library(out / "library.json", mode=mode, backend=backend)
        for i, lv in enumerate(lib.levels):
            net.request_level(i)
            torch.testing.assert_close(net.predict(inputs[lv.arch.resolution]), expected[i], rtol=tolerance,
                                       atol=tolerance)

    # the same sub-networks again, without a search: the same top-1, latency measured again
    assert main(["build-library", *checkpoint, "--levels-from", str(out / "library.json"), "--out",
                 str(tmp_path / "again"), *VIT_BUILD, *vit_data]) == 0
    again = SubnetLibrary.load(tmp_path / "again" / "library.json")
    before = {lv.arch: lv.top1 for lv in lib.levels}
    assert again.levels and all(before[lv.arch] == lv.top1 for lv in again.levels)

    capsys.readouterr()
    for options in (["--heads"], ["--tune-bn-epochs", "1"]):
        assert main(["build-library", *checkpoint, "--search", str(search), "--out", str(tmp_path / "never"),
                     *options, *vit_data]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "batch norm, not elastic_vit" in err
    assert not (tmp_path / "never").exists()
    assert main(["calibrate", "--library", str(out / "library.json"), *vit_data]) == 2
    assert "elastic_vit levels have no BN statistics or heads to recalibrate" in capsys.readouterr().err
