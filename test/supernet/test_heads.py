"""Per-level classifier heads: file round trip, bad files, applying and restoring."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dynofa_ros.supernet.heads import (
    HeadError,
    LevelHead,
    apply_head,
    check_head,
    final_linear,
    load_heads,
    save_heads,
    using_head,
)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))


def _head(seed: int, classes: int = 3, features: int = 4) -> LevelHead:
    g = torch.Generator().manual_seed(seed)
    return LevelHead(torch.randn(classes, features, generator=g), torch.randn(classes, generator=g))


def test_round_trip(tmp_path: Path) -> None:
    heads = [_head(0), _head(1)]
    save_heads(tmp_path / "heads.pt", heads)
    loaded = load_heads(tmp_path / "heads.pt")
    assert len(loaded) == 2
    for a, b in zip(heads, loaded, strict=True):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


@pytest.mark.parametrize(("content", "message"), [
    ([1, 2], "expected a dict of tensors"),
    ({"0/weight": torch.zeros(3, 4), "0/bias": torch.zeros(3), "0/scale": torch.zeros(3)}, "'0/scale'"),
    ({"0/weight": torch.zeros(3, 4), "0/bias": torch.zeros(3), "2/weight": torch.zeros(3, 4),
      "2/bias": torch.zeros(3)}, r"level indices \[0, 2\]"),
    ({"0/weight": torch.zeros(3, 4)}, "level 0 needs a 2-D weight and a bias"),
    ({"0/weight": torch.zeros(3, 4), "0/bias": torch.zeros(4)}, "level 0 needs a 2-D weight and a bias"),
    ({"0/weight": "zeros", "0/bias": torch.zeros(3)}, "'0/weight'"),
])
def test_bad_files(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "heads.pt"
    torch.save(content, path)
    with pytest.raises(HeadError, match=message):
        load_heads(path)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="classifier heads file not found"):
        load_heads(tmp_path / "none.pt")
    save_heads(tmp_path / "heads.pt", [_head(0)])
    (tmp_path / "cut.pt").write_bytes((tmp_path / "heads.pt").read_bytes()[:-20])
    with pytest.raises(HeadError, match="corrupt or truncated"):
        load_heads(tmp_path / "cut.pt")


def test_apply_and_restore() -> None:
    net = _net()
    linear = final_linear(net)
    assert linear is net[2]
    own = (linear.weight.detach().clone(), linear.bias.detach().clone())
    head = _head(5)
    with using_head(net, head):
        assert torch.equal(linear.weight, head.weight) and torch.equal(linear.bias, head.bias)
    assert torch.equal(linear.weight, own[0]) and torch.equal(linear.bias, own[1])
    with using_head(net, None):
        assert torch.equal(linear.weight, own[0])
    apply_head(net, head)
    assert torch.equal(linear.bias, head.bias)


def test_shape_and_layer_errors() -> None:
    with pytest.raises(HeadError, match=r"head: weight \(3, 5\) / bias \(3,\) do not fit the classifier \(\(3, 4\)"):
        check_head(_net(), _head(0, features=5))
    with pytest.raises(HeadError, match="Conv2d has no nn.Linear"):
        final_linear(nn.Conv2d(3, 3, 1))
