"""Evaluate, profile and search with an elastic ViT supernet: scoring without BN, latency models on the family's
features, evolutionary operators in its space, and the three commands end to end on a tiny spec."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.offline.cli import main
from dynofa_ros.offline.data import to_input
from dynofa_ros.offline.evaluate import evaluate_arch, evaluate_subnets, subnet_cost
from dynofa_ros.offline.predictor import encode, fit_and_report
from dynofa_ros.offline.profile import (
    VIT_FEATURES,
    LatencyLUT,
    LinearArchModel,
    Measured,
    prediction_error,
    vit_arch_features,
)
from dynofa_ros.offline.search import SearchSpace
from dynofa_ros.offline.timing import Timing
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.checkpoint import save_supernet
from dynofa_ros.supernet.elastic_vit import ElasticViT
from dynofa_ros.supernet.serving import ONNXRUNTIME, TORCH, onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch, vit_mac_terms, vit_macs, vit_params

from ..data_util import cifar_split_folder

TINY = ElasticViTSpec(embed_dim_list=(16, 24), depth_list=(1, 2), heads_list=(1, 2), mlp_ratio_list=(1, 2),
                      head_dim=8, tokenizer_channels=8, resolutions=(16, 24))
BACKENDS = (TORCH, ONNXRUNTIME) if onnxruntime_installed() else (TORCH,)


@pytest.fixture(scope="module")
def supernet() -> ElasticViT:
    torch.manual_seed(0)
    return ElasticViT(TINY).eval()


def _archs(n: int, seed: int = 0) -> list[ViTArch]:
    rng = random.Random(seed)
    return [TINY.sample(rng) for _ in range(n)]


def test_mutation_and_crossover_stay_in_the_vit_space() -> None:
    space = SearchSpace(TINY, (24,))
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(40)]
    assert {a.resolution for a in archs} == {24} and len(set(archs)) > 15
    for _ in range(300):
        a, b = rng.sample(archs, 2)
        for child in (space.mutate(a, rng, prob=rng.choice((0.1, 0.5, 1.0))), space.crossover(a, b, rng)):
            child.validate(TINY)
            assert space.contains(child) and child == child.canonical(TINY) and child.resolution == 24
        child = space.crossover(a, b, rng)
        assert child.embed_dim in (a.embed_dim, b.embed_dim) and child.depth in (a.depth, b.depth)
        for i in range(child.depth):
            parents = [p for p in (a, b) if i < p.depth]
            assert child.heads[i] in {p.heads[i] for p in parents}
            assert child.mlp_ratio[i] in {p.mlp_ratio[i] for p in parents}
    assert all(space.mutate(a, rng, prob=0.0) == a for a in archs)
    assert len({space.mutate(archs[0], rng, prob=1.0) for _ in range(30)}) > 5
    assert (space.smallest(), space.largest()) == (ViTArch(1, (1,), (1.0,), 16, 24), TINY.largest())
    assert not space.contains(SubnetArch.largest(SupernetSpec()))  # another family's arch


def test_vit_accuracy_encoding_and_predictor() -> None:
    smallest = TINY.smallest()
    x = encode(TINY, [smallest, TINY.largest()])
    # embed (2), depth (2), per layer heads (2) and MLP ratio (2), resolution (2); the inactive second layer is zero
    assert x.shape == (2, 2 + 2 + 2 * 4 + 2) and x[0, 8:12].sum() == 0 and x[1].sum() == 1 + 1 + 2 * 2 + 1
    space, rng = SearchSpace(TINY), random.Random(1)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(300)))

    def quality(a: ViTArch) -> float:
        return 0.3 + 0.002 * a.embed_dim + 0.03 * sum(a.heads) + 0.02 * sum(a.mlp_ratio) + 0.001 * a.resolution

    top1 = np.array([quality(a) for a in archs]) + np.random.default_rng(0).normal(0, 0.002, len(archs))
    predictor, report = fit_and_report(TINY, archs, top1)
    assert report.rmse < 0.01 and report.spearman > 0.9
    assert predictor.predict([TINY.largest()])[0] > predictor.predict([smallest])[0]
    with pytest.raises(ValueError, match="embed_dim"):
        encode(TINY, [ViTArch(1, (1,), (1.0,), 32, 16)])


def test_evaluate_scores_a_vit_subnet_without_batch_norm(supernet: ElasticViT,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_bn(*_: object, **__: object) -> None:
        raise AssertionError("a ViT has no BN statistics to calibrate")

    monkeypatch.setattr("dynofa_ros.offline.evaluate.calibrate_bn", no_bn)
    images = np.random.default_rng(0).integers(0, 256, (24, 24, 24, 3), dtype=np.uint8)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    arch = _archs(1, seed=3)[0]
    with torch.no_grad():
        supernet.set_active_subnet(arch)
        logits = supernet.get_active_subnet().eval()(to_input(torch.from_numpy(images), arch.resolution, TINY.mean,
                                                              TINY.std))
    predicted = logits.argmax(1).numpy()
    labels = np.arange(len(images)) % TINY.num_classes
    acc = evaluate_arch(supernet, arch, images, labels, images[:0], TINY, batch=7)
    assert 0.0 <= acc <= 1.0 and acc == pytest.approx((predicted == labels).mean())
    assert evaluate_arch(supernet, arch, images, predicted, images[:0], TINY) == 1.0
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
    with pytest.raises(ValueError, match="batch norm, not elastic_vit"):
        evaluate_arch(supernet, arch, images, labels, images, TINY, head_labels=labels)
    assert subnet_cost(supernet, arch) == (vit_macs(TINY, arch), vit_params(TINY, arch))
    [record] = evaluate_subnets(supernet, TINY, [("a", arch)], images, predicted, images, 16, "test")
    assert record["top1"] == 1.0 and record["n_calib"] == 0 and record["macs"] == vit_macs(TINY, arch)


def _measured_by_law(coef: np.ndarray, archs: list[ViTArch]) -> list[Measured]:
    return [Measured(a, "cpu-1t", Timing(*(float(vit_arch_features(TINY, a) @ coef),) * 3, 1, 0)) for a in archs]


def test_vit_latency_model_fits_its_features_and_round_trips() -> None:
    for arch in [*_archs(5), TINY.smallest(), TINY.largest()]:
        features, macs = vit_arch_features(TINY, arch), vit_mac_terms(TINY, arch)
        assert features[:2].tolist() == [1.0, arch.depth]
        assert features[2:].sum() * 1e6 == pytest.approx(vit_macs(TINY, arch) - macs.head)
    coef = np.array([3e-4, 2e-4, 1e-3, 5e-4, 2e-3])
    fit, held_out = _archs(8, seed=1), _archs(5, seed=2)
    model = LinearArchModel.fit(TINY, TORCH, _measured_by_law(coef, fit))
    assert model.coef == pytest.approx(coef, rel=1e-5) and model.features.names == VIT_FEATURES
    model.error = prediction_error(model, _measured_by_law(coef, held_out))
    assert model.error["mape"] < 1e-6 and model.error["n"] == 5
    lut = LatencyLUT(TINY, "cpu-1t", 1, "cpu", "synthetic", {}, predictors={TORCH: model}, resolutions=(16, 24))
    loaded = LatencyLUT.from_dict(json.loads(json.dumps(lut.to_dict())))
    assert loaded.spec == TINY and loaded.backends == (TORCH,) and loaded.resolutions == (16, 24)
    assert loaded.predictor(TORCH) == model and not loaded.entries
    with pytest.raises(ValueError, match="no onnxruntime predictor"):
        loaded.predictor(ONNXRUNTIME)
    with pytest.raises(ValueError, match=">= 5 measured fit subnets"):
        LinearArchModel.fit(TINY, TORCH, _measured_by_law(coef, fit[:4]))
    with pytest.raises(ValueError, match="unknown latency predictor"):
        LinearArchModel.from_dict({**model.to_dict(), "features": ["intercept", "residual blocks"]}, TINY)


@pytest.fixture(scope="module")
def vit_run(cifar_tiny_dir: Path, supernet: ElasticViT, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder with the tiny ViT's checkpoint and CIFAR-10 data (300 train, 30 test images)."""
    work = tmp_path_factory.mktemp("vit")
    save_supernet(work / "supernet.pt", supernet, TINY)
    cifar_split_folder(cifar_tiny_dir, work / "data", test_every=10)
    return work


def _data(work: Path) -> list[str]:
    return ["--data", str(work / "data"), "--cache-dir", str(work / "cache"), "--val-size", "60"]


def test_profile_search_and_evaluate_commands_on_a_vit(vit_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    checkpoint, profile = ["--checkpoint", str(vit_run / "supernet.pt")], vit_run / "profile"
    assert main(["profile", *checkpoint, "--out", str(profile), "--profiles", "cpu-1t", "--backends", *BACKENDS,
                 "--warmup", "1", "--repeats", "3", "--rounds", "1", "--fit", "4", "--holdout", "3"]) == 0
    lut = LatencyLUT.load(profile / "lut_cpu-1t.json")
    assert lut.spec == TINY and lut.backends == BACKENDS and not lut.entries and lut.resolutions == (16, 24)
    report = json.loads((profile / "profile_report.json").read_text())["profiles"]["cpu-1t"]["backends"]
    for backend in BACKENDS:
        predictor = lut.predictor(backend)
        assert isinstance(predictor, LinearArchModel) and report[backend]["error"] == predictor.error
        assert report[backend]["error_on"] == "held-out" and predictor.error["n"] == 3
        assert [m["set"] for m in report[backend]["measured"]] == ["fit"] * 6 + ["held-out"] * 3
    printed = capsys.readouterr().out
    assert "no per-layer table" in printed and f"{BACKENDS[-1]} (linear-arch): held-out MAPE" in printed

    out = vit_run / "search.json"
    assert main(["search", *checkpoint, "--lut", str(profile / "lut_cpu-1t.json"), "--out", str(out),
                 "--random-candidates", "12", "--constraints", "3", "--population", "8", "--generations", "2",
                 "--warmup", "1", "--repeats", "3", "--max-val-images", "40", *_data(vit_run)]) == 0
    search = json.loads(out.read_text())
    assert search["family"] == "elastic_vit" and search["backend"] == BACKENDS[-1]
    assert ElasticViTSpec.from_dict(search["spec"]) == TINY
    front = [search["points"][i] for i in search["front"]]
    latency, accuracy = [p["cpu"]["p50_s"] for p in front], [p["val_top1"] for p in front]
    assert front and all(a < b for a, b in zip(latency, latency[1:]))
    assert all(a <= b for a, b in zip(accuracy, accuracy[1:]))
    for p in search["points"]:
        arch = ViTArch.from_dict(p["arch"])
        arch.validate(TINY)
        assert 0 <= p["val_top1"] <= 1 and p["macs"] == vit_macs(TINY, arch)
        assert p["lut_s"] == pytest.approx(lut.predictor(search["backend"]).predict(arch))

    assert main(["evaluate", *checkpoint, "--subnets", "largest", "smallest", "--max-images", "20",
                 "--out", str(vit_run / "eval.json"), *_data(vit_run)]) == 0
    records = json.loads((vit_run / "eval.json").read_text())["records"]
    assert [r["name"] for r in records] == ["largest", "smallest"]
    assert [ViTArch.from_dict(r["arch"]) for r in records] == [TINY.largest(), TINY.smallest()]
    assert all(0 <= r["top1"] <= 1 and r["n_calib"] == 0 and r["images"] == 20 for r in records)
    capsys.readouterr()
    for options, message in ((["--fit-heads"], "batch norm, not elastic_vit"),
                             (["--resolutions", "20"], "arch.resolution values [20] not in")):
        assert main(["evaluate", *checkpoint, "--subnets", "largest", *options, *_data(vit_run)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err
