"""DynamicNetwork over a library of either family: outputs equal the extracted sub-networks, frame-safe switching,
errors."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.supernet.bn import apply_bn_stats, load_bn_stats, save_bn_stats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.heads import HeadError, LevelHead, load_heads, save_heads
from dynofa_ros.supernet.library import LibraryError, SubnetLibrary, sha256_file
from dynofa_ros.supernet.preprocess import Preprocessor
from dynofa_ros.supernet.runtime import MODES, DynamicNetwork, Prediction, set_torch_threads
from dynofa_ros.supernet.serving import onnxruntime_installed
from dynofa_ros.supernet.vit_arch import ViTArch

FRAME = np.random.default_rng(1).integers(0, 256, (44, 52, 3), dtype=np.uint8)
TOL = 1e-4  # a level's logits against the reference (compiled backends round apart); levels differ by > 1e-3


LIBRARIES = {"ofa_mbv3": "tiny_library_dir", "elastic_vit": "tiny_vit_library_dir"}


@pytest.fixture(scope="module", params=LIBRARIES)
def library_dir(request: pytest.FixtureRequest) -> Path:
    """The tiny library of each family."""
    return request.getfixturevalue(LIBRARIES[request.param])


def _vit_subnet(supernet: torch.nn.Module, arch: ViTArch) -> torch.nn.Module:
    supernet.set_active_subnet(arch)
    return supernet.get_active_subnet().eval()


def _reference_subnets(lib: SubnetLibrary) -> list[torch.nn.Module]:
    """Per level: ofa's get_active_subnet(preserve_weight=True) with the level's BN stats and classifier head, or the
    elastic ViT's get_active_subnet (no BN statistics, no heads)."""
    supernet, _ = load_supernet(lib.checkpoint_path, lib.spec)
    if lib.bn_stats_path is None:
        return [_vit_subnet(supernet, level.arch) for level in lib.levels]
    subnets = []
    for level, level_stats, head in zip(lib.levels, load_bn_stats(lib.bn_stats_path), load_heads(lib.heads_path),
                                        strict=True):
        level.arch.apply(supernet)
        apply_bn_stats(supernet, level_stats)
        subnet = supernet.get_active_subnet(preserve_weight=True).eval()
        subnet.classifier.linear.weight.data.copy_(head.weight)
        subnet.classifier.linear.bias.data.copy_(head.bias)
        subnets.append(subnet)
    return subnets


@pytest.fixture(scope="module")
def reference(library_dir: Path) -> list[torch.Tensor]:
    """Per level: logits of FRAME from the level's extracted sub-network."""
    lib = SubnetLibrary.load(library_dir / "library.json")
    pre = Preprocessor(lib.spec.mean, lib.spec.std)
    outputs = []
    for level, subnet in zip(lib.levels, _reference_subnets(lib), strict=True):
        with torch.no_grad():
            outputs.append(subnet(pre(FRAME, "rgb8", level.arch.resolution)))
    for i in range(len(outputs)):
        for j in range(i):
            assert (outputs[i] - outputs[j]).abs().max() > 1e-3, "levels must be distinguishable"
    return outputs


SERVING = [("cache", "torch"), ("inplace", "torch")]
if onnxruntime_installed():
    SERVING.append(("cache", "onnxruntime"))


@pytest.fixture(scope="module", params=SERVING, ids="-".join)
def network(request, library_dir: Path) -> DynamicNetwork:
    mode, backend = request.param
    return DynamicNetwork.from_library(library_dir / "library.json", mode=mode, threads=1, backend=backend)


def _level_of(logits: torch.Tensor, reference: list[torch.Tensor]) -> list[int]:
    return [i for i, ref in enumerate(reference) if (logits - ref).abs().max().item() <= TOL]


def test_outputs_equal_extracted_subnets(network: DynamicNetwork, reference) -> None:
    assert network.level_backends == (network.backend,) * len(network.levels)  # none fell back to eager torch
    pre = Preprocessor(network.spec.mean, network.spec.std)
    for index in (3, 0, 2, 1, 3, 0):  # revisit levels: in place, BN buffers are overwritten each time
        network.activate(index)
        assert network.active_index == index and network.active is network.levels[index]
        batch = pre(FRAME, "rgb8", network.active.arch.resolution)
        result = network.run(batch)
        assert result.level == index
        assert (result.logits - reference[index]).abs().max().item() <= TOL
        assert torch.equal(network.predict(batch), result.logits)


def test_request_applies_at_the_next_frame(network: DynamicNetwork, reference) -> None:
    network.activate(0)
    network.request_level("L2")
    assert network.active_index == 0 and network.requested_index == 2
    assert network.run_frames(FRAME).level == 2
    assert network.active_index == 2

    # a request made while a frame is in flight applies to the following frame, not the running one
    preprocess = network.preprocessor

    def request_midway(*args: object) -> torch.Tensor:
        network.request_level(1)
        return preprocess(*args)

    network.preprocessor = request_midway
    try:
        during = network.run_frames(FRAME)
    finally:
        network.preprocessor = preprocess
    after = network.run_frames(FRAME)
    assert (during.level, after.level) == (2, 1)
    assert _level_of(during.logits, reference) == [2]
    assert _level_of(after.logits, reference) == [1]


def test_switching_during_a_stream_drops_no_frame(network: DynamicNetwork, reference) -> None:
    n_frames = 60
    results = []
    stop = threading.Event()

    def switcher() -> None:
        rng = random.Random(0)
        while not stop.is_set():
            network.request_level(rng.randrange(len(network.levels)))
            stop.wait(0.0005)

    def predictor() -> None:
        for _ in range(n_frames):
            results.append(network.run_frames(FRAME, "rgb8"))

    threads = [threading.Thread(target=switcher), threading.Thread(target=predictor)]
    for t in threads:
        t.start()
    threads[1].join(timeout=60)
    stop.set()
    threads[0].join(timeout=5)
    assert len(results) == n_frames
    for result in results:
        assert _level_of(result.logits, reference) == [result.level]
    assert len({r.level for r in results}) >= 2


def test_classify(network: DynamicNetwork) -> None:
    network.activate(1)
    prediction = network.classify(FRAME, "rgb8")
    assert isinstance(prediction, Prediction)
    assert prediction.label == network.spec.class_names[prediction.class_ids[0]]
    assert 0.0 < prediction.score <= 1.0 and prediction.latency_s > 0
    assert (prediction.level, prediction.level_name) == (1, "L1")
    batch = network.classify_batch([FRAME, FRAME[:, :, ::-1].copy()], "bgr8")
    assert len(batch) == 2 and batch[1].class_ids == prediction.class_ids


def test_prepared_frames_run_on_the_level_they_meet(network: DynamicNetwork) -> None:
    """A frame prepared ahead classifies as classify does; a switch between preparing and running it runs it on the
    new level, preprocessed again when the resolution changed."""
    n_classes = len(network.spec.class_names)
    resolutions = [level.arch.resolution for level in network.levels]
    low, high = resolutions.index(min(resolutions)), resolutions.index(max(resolutions))
    assert resolutions[low] != resolutions[high]
    expected = {}
    for index in (low, high):
        network.activate(index)
        expected[index] = network.classify(FRAME, "rgb8", n_classes)
    network.activate(low)
    prepared = network.prepare(FRAME, "rgb8")
    assert prepared.resolution == resolutions[low] and tuple(prepared.batch.shape[2:]) == (resolutions[low],) * 2
    for switch_to in (low, high):
        network.request_level(switch_to)
        got = network.classify_prepared(prepared, n_classes)[0]
        assert got.level == switch_to and got.latency_s >= prepared.seconds > 0
        assert got.class_ids == expected[switch_to].class_ids
        assert np.allclose(got.scores, expected[switch_to].scores, atol=1e-5)


def test_time_levels_times_every_level_and_keeps_the_active_one(network: DynamicNetwork, reference) -> None:
    network.activate(1)
    times = network.time_levels(FRAME, "rgb8", repeats=2)
    assert len(times) == len(network.levels) and all(t > 0 for t in times)
    assert network.active_index == 1
    assert _level_of(network.predict(Preprocessor(network.spec.mean, network.spec.std)(
        FRAME, "rgb8", network.active.arch.resolution)), reference) == [1]
    assert len(network.time_levels(FRAME, "rgb8", repeats=1, period_s=0.005)) == len(network.levels)
    for bad in ({"repeats": 0}, {"period_s": -1.0}, {"period_s": float("nan")}):
        with pytest.raises(ValueError):
            network.time_levels(FRAME, **bad)


def test_classify_top_k(network: DynamicNetwork) -> None:
    network.activate(2)
    top3 = network.classify(FRAME, "rgb8", top_k=3)
    probs = torch.softmax(network.run_frames([FRAME], "rgb8").logits.float(), dim=1)[0]
    expected = probs.argsort(descending=True)[:3].tolist()
    assert list(top3.class_ids) == expected
    assert top3.labels == tuple(network.spec.class_names[i] for i in expected)
    assert np.allclose(top3.scores, probs[expected].tolist(), atol=1e-6)
    assert list(top3.scores) == sorted(top3.scores, reverse=True)
    assert (top3.label, top3.score) == (top3.labels[0], top3.scores[0])
    everything = network.classify_batch([FRAME], top_k=len(network.spec.class_names))[0]
    assert abs(sum(everything.scores) - 1.0) < 1e-5
    for bad in (0, 11, True, 2.0):
        with pytest.raises(ValueError, match="top_k must be"):
            network.classify(FRAME, top_k=bad)


@pytest.mark.parametrize("level", [4, -1, True, 1.0, "L9"])
def test_bad_levels(network: DynamicNetwork, level) -> None:
    with pytest.raises(ValueError, match="out of range|no level named"):
        network.request_level(level)
    with pytest.raises(ValueError, match="out of range|no level named"):
        network.activate(level)


def test_memory_accounting(tiny_library_dir: Path) -> None:
    inplace = DynamicNetwork.from_library(tiny_library_dir / "library.json", mode="inplace")
    supernet, _ = load_supernet(tiny_library_dir / "supernet.pt")
    expected = sum(t.numel() * 4 for t in supernet.state_dict().values() if t.is_floating_point())
    assert inplace.parameter_bytes() >= expected
    cache = DynamicNetwork.from_library(tiny_library_dir / "library.json", mode="cache")
    assert cache.parameter_bytes() == sum(
        sum(t.numel() * t.element_size() for t in (*cache.module(i).parameters(), *cache.module(i).buffers()))
        for i in range(4))


def test_bad_arguments(tiny_library_dir: Path) -> None:
    path = tiny_library_dir / "library.json"
    with pytest.raises(ValueError, match="unknown mode 'turbo'"):
        DynamicNetwork.from_library(path, mode="turbo")
    with pytest.raises(ValueError, match="threads must be an int >= 1"):
        DynamicNetwork.from_library(path, threads=0)
    with pytest.raises(ValueError, match="out of range"):
        DynamicNetwork.from_library(path, initial_level=9)


def test_threads_are_process_wide_and_set_only_when_given(tiny_library_dir: Path, caplog) -> None:
    before = torch.get_num_threads()
    try:
        DynamicNetwork.from_library(tiny_library_dir / "library.json", threads=1)
        torch.set_num_threads(2)
        DynamicNetwork.from_library(tiny_library_dir / "library.json")  # no threads given: left alone
        assert torch.get_num_threads() == 2
        with caplog.at_level("WARNING"):
            set_torch_threads(2)
        assert torch.get_num_threads() == 2 and "process-wide" in caplog.text
    finally:
        torch.set_num_threads(before)


def _rewrite(library_json: Path, key: str, save, content) -> None:
    """Replace the file the library names under ``key`` by ``save(path, content)``; record its new SHA-256."""
    data = json.loads(library_json.read_text())
    path = library_json.parent / data[key]["path"]
    save(path, content)
    data[key]["sha256"] = sha256_file(path)
    library_json.write_text(json.dumps(data))


def test_bn_stats_must_match_the_levels(library_copy: Path) -> None:
    stats = load_bn_stats(library_copy.parent / "bn_stats.pt")
    _rewrite(library_copy, "bn_stats", save_bn_stats, stats[:3])
    with pytest.raises(LibraryError, match="3 BN statistics sets for 4 levels"):
        DynamicNetwork.from_library(library_copy)
    _rewrite(library_copy, "bn_stats", save_bn_stats, [stats[3], stats[1], stats[2], stats[0]])
    with pytest.raises(LibraryError, match=r"level 0 \(L0\): BN statistics do not match its architecture"):
        DynamicNetwork.from_library(library_copy)


def test_a_library_without_heads_uses_the_shared_classifier(library_copy: Path) -> None:
    data = json.loads(library_copy.read_text())
    del data["heads"]
    library_copy.write_text(json.dumps(data))
    lib = SubnetLibrary.load(library_copy)
    assert lib.heads is None and lib.heads_path is None
    supernet, spec = load_supernet(lib.checkpoint_path, lib.spec)
    shared = (supernet.classifier.linear.weight.clone(), supernet.classifier.linear.bias.clone())
    batch = Preprocessor(spec.mean, spec.std)(FRAME, "rgb8", lib.levels[1].arch.resolution)
    outputs = []
    for mode in MODES:
        network = DynamicNetwork.from_library(lib, mode=mode, initial_level=1)
        linear = network.module().classifier.linear
        assert torch.equal(linear.weight, shared[0]) and torch.equal(linear.bias, shared[1])
        outputs.append(network.predict(batch))
    assert (outputs[0] - outputs[1]).abs().max().item() <= 1e-5


def test_heads_must_match_the_levels(library_copy: Path) -> None:
    heads = load_heads(library_copy.parent / "heads.pt")
    _rewrite(library_copy, "heads", save_heads, heads[:3])
    with pytest.raises(LibraryError, match="3 classifier heads for 4 levels"):
        DynamicNetwork.from_library(library_copy)
    _rewrite(library_copy, "heads", save_heads, [*heads[:3], LevelHead(heads[3].weight[:, :-1], heads[3].bias)])
    with pytest.raises(HeadError, match=r"level 3 \(L3\) classifier head: weight \(10, \d+\)"):
        DynamicNetwork.from_library(library_copy)
    lib = SubnetLibrary.load(library_copy, verify=False)
    supernet, _ = load_supernet(lib.checkpoint_path, lib.spec)
    with pytest.raises(LibraryError, match="every level has its own classifier head or none"):
        DynamicNetwork(supernet, lib.spec, lib.levels, load_bn_stats(lib.bn_stats_path), heads=[*heads[:3], None])


@pytest.mark.parametrize(("copy", "n_files"), [("library_copy", 3), ("vit_library_copy", 1)])
def test_tampered_files_are_refused(copy: str, n_files: int, request: pytest.FixtureRequest) -> None:
    library_json = request.getfixturevalue(copy)
    lib = SubnetLibrary.load(library_json)
    files = {"checkpoint": lib.checkpoint_path, "BN statistics": lib.bn_stats_path,
             "classifier heads": lib.heads_path}
    files = {what: path for what, path in files.items() if path is not None}
    assert len(files) == n_files
    for what, path in files.items():
        content = path.read_bytes()
        path.write_bytes(content[:-10])
        with pytest.raises(LibraryError, match=f"{what} file .* has sha256"):
            DynamicNetwork.from_library(library_json)
        path.write_bytes(content)
    assert DynamicNetwork.from_library(library_json, mode="inplace").active_index == 0


def test_an_old_library_without_a_family_loads_as_ofa_mbv3(tiny_library_dir: Path, library_copy: Path) -> None:
    data = json.loads(library_copy.read_text())
    del data["supernet"]["spec"]["family"]
    library_copy.write_text(json.dumps(data))
    old, current = SubnetLibrary.load(library_copy), SubnetLibrary.load(tiny_library_dir / "library.json")
    assert old.spec == current.spec and old.levels == current.levels
    pre = Preprocessor(old.spec.mean, old.spec.std)
    for mode in MODES:
        networks = [DynamicNetwork.from_library(lib, mode=mode, backend="torch") for lib in (old, current)]
        for index, level in enumerate(old.levels):
            batch = pre(FRAME, "rgb8", level.arch.resolution)
            for net in networks:
                net.activate(index)
            assert torch.equal(networks[0].predict(batch), networks[1].predict(batch))


def test_bn_statistics_follow_the_family(tiny_library_dir: Path, tiny_vit_library_dir: Path) -> None:
    ofa, vit = (SubnetLibrary.load(d / "library.json") for d in (tiny_library_dir, tiny_vit_library_dir))
    ofa_net, _ = load_supernet(ofa.checkpoint_path)
    with pytest.raises(LibraryError, match="ofa_mbv3 levels need their BN statistics"):
        DynamicNetwork(ofa_net, ofa.spec, ofa.levels)
    vit_net, _ = load_supernet(vit.checkpoint_path)
    with pytest.raises(LibraryError, match="elastic_vit supernets have no BN statistics, got 4 sets"):
        DynamicNetwork(vit_net, vit.spec, vit.levels, [{}] * 4)


def test_default_library_from_environment(tiny_library_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNOFA_LIBRARY", str(tiny_library_dir / "library.json"))
    network = DynamicNetwork.from_library(mode="inplace", initial_level=3)
    assert network.active.name == "L3"
