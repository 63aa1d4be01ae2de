"""Supernet checkpoints: shipped fp16 format, published ImageNet layout, and clear errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

from dynofa_ros.supernet.checkpoint import CheckpointError, CheckpointNotFoundError, load_supernet, save_supernet
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

IMAGENET = SupernetSpec(num_classes=1000, class_names=tuple(f"n{i:04d}" for i in range(1000)),
                        resolutions=(160, 176, 192, 208, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def published_state() -> dict[str, torch.Tensor]:
    """State dict in the layout of ofa_mbv3_d234_e346_k357_w1.0, made by ofa's own class."""
    torch.manual_seed(0)
    net = OFAMobileNetV3(n_classes=1000, width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                         depth_list=[2, 3, 4])
    return net.state_dict()


def _assert_same(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.parametrize("wrapped", [False, True])
def test_published_layout_loads(published_state, tmp_path: Path, wrapped: bool) -> None:
    path = tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"
    torch.save({"state_dict": published_state} if wrapped else published_state, path)
    model, spec = load_supernet(path, IMAGENET)
    assert spec == IMAGENET
    assert not model.training
    _assert_same(model, published_state)


def test_old_key_names_are_remapped(published_state, tmp_path: Path) -> None:
    old = {}
    for key, value in published_state.items():
        if key.startswith("blocks.") and ".conv." in key:
            key = key.replace(".conv.", ".mobile_inverted_conv.", 1).replace(".bn.bn.", ".bn.")
        old[key] = value
    assert any(".mobile_inverted_conv." in k for k in old)
    path = tmp_path / "old.pth"
    torch.save({"state_dict": old}, path)
    model, _ = load_supernet(path, IMAGENET)
    _assert_same(model, published_state)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (replace(IMAGENET, width_mult=1.2), r"wrong shape .*width 1\.2"),
        (SupernetSpec(), r"classifier\.linear\.weight: file \(1000, 1280\) vs spec \(10, 1280\) \(number of classes"),
        (replace(IMAGENET, ks_list=(3, 5)),
         r"ks \[3, 5\].*20 unexpected keys \(blocks\.1\.conv\.depth_conv\.conv\.7to5_matrix"),
        (replace(IMAGENET, depth_list=(2, 3)), r"d \[2, 3\]\): \d+ missing keys .*\d+ unexpected keys"),
    ],
    ids=["width", "classes", "kernels", "depth"],
)
def test_published_layout_with_mismatched_spec(published_state, tmp_path: Path, spec, message: str) -> None:
    path = tmp_path / "w1.0.pth"
    torch.save(published_state, path)
    with pytest.raises(CheckpointError, match=message):
        load_supernet(path, spec)


def test_plain_state_dict_needs_a_spec(published_state, tmp_path: Path) -> None:
    path = tmp_path / "w1.0.pth"
    torch.save(published_state, path)
    with pytest.raises(CheckpointError, match="without a spec"):
        load_supernet(path)


def test_missing_and_unexpected_keys_are_named(tmp_path: Path) -> None:
    spec = SupernetSpec()
    state = build_supernet(spec).state_dict()
    state.pop("first_conv.conv.weight")
    state["head.extra"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing keys \(first_conv\.conv\.weight\).*unexpected keys \(head"):
        load_supernet(path, spec)


def test_shipped_format_round_trip(tmp_path: Path) -> None:
    spec = SupernetSpec(num_classes=3, class_names=("a", "b", "c"), width_mult=1.2)
    torch.manual_seed(1)
    model = build_supernet(spec)
    path = tmp_path / "supernet.pt"
    save_supernet(path, model, spec)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "dynofa-supernet/1" and raw["spec"] == spec.to_dict()
    assert raw["state_dict"]["first_conv.conv.weight"].dtype == torch.float16
    loaded, loaded_spec = load_supernet(path)
    assert loaded_spec == spec
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == value.dtype, key
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(got, expected), key
    load_supernet(path, spec)  # an equal spec is accepted
    with pytest.raises(CheckpointError, match="spec differs.*num_classes"):
        load_supernet(path, SupernetSpec())


def test_unknown_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": "dynofa-supernet/9", "spec": {}, "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="format 'dynofa-supernet/9' is not supported"):
        load_supernet(path)


def test_not_found_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        load_supernet(tmp_path / "absent.pt", SupernetSpec())
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_supernet(garbage, SupernetSpec())
    good = tmp_path / "good.pt"
    save_supernet(good, build_supernet(SupernetSpec()), SupernetSpec())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_supernet(truncated)


def test_non_weights_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": {"x": Path("/etc")}}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_supernet(path, SupernetSpec())
