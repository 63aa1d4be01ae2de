"""BN statistics: collect/apply, the precomputed copy plan, and the file format."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.bn import (
    BnCopyPlan,
    BnStatsError,
    active_bn_channels,
    apply_bn_stats,
    collect_bn_stats,
    load_bn_stats,
    save_bn_stats,
)
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

SPEC = SupernetSpec(resolutions=(32,))


@pytest.fixture(scope="module")
def supernet() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_supernet(SPEC).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return net


def test_active_channels_follow_the_arch(supernet) -> None:
    small, large = SubnetArch.smallest(SPEC), SubnetArch.largest(SPEC)
    c_small, c_large = active_bn_channels(supernet, small), active_bn_channels(supernet, large)
    # 3 stem/first-block BNs + final expand, 3 per active block (5 stages x depth)
    assert len(c_small) == 4 + 3 * 5 * 2 and len(c_large) == 4 + 3 * 5 * 4
    assert c_small["blocks.1.conv.inverted_bottleneck.bn.bn"] == 16 * 3  # 16 input channels x expand 3
    assert c_large["blocks.1.conv.inverted_bottleneck.bn.bn"] == 16 * 6
    assert c_small["final_expand_layer.bn"] == c_large["final_expand_layer.bn"] == 960
    assert "blocks.3.conv.depth_conv.bn.bn" not in c_small  # stage 1 runs blocks 1-2 only
    assert supernet.training is False


def test_collect_apply_and_plan_restore_the_same_buffers(supernet) -> None:
    arch = SubnetArch.sample(SPEC, random.Random(4))
    stats = collect_bn_stats(supernet, arch)
    for name, (mean, var) in stats.items():
        assert mean.shape == var.shape and mean.ndim == 1, name
    original = {k: v.clone() for k, v in supernet.state_dict().items() if "running" in k}
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
    apply_bn_stats(supernet, stats)
    for name, (mean, _) in stats.items():
        assert torch.equal(supernet.state_dict()[f"{name}.running_mean"][: mean.numel()], mean)
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(7.0)
    BnCopyPlan.build(supernet, stats).apply()
    for name, (_, var) in stats.items():
        buf = supernet.state_dict()[f"{name}.running_var"]
        assert torch.equal(buf[: var.numel()], original[f"{name}.running_var"][: var.numel()])
        assert torch.all(buf[var.numel():] == 7.0)


def test_bad_stats_are_refused(supernet) -> None:
    with pytest.raises(BnStatsError, match="not a BatchNorm2d"):
        apply_bn_stats(supernet, {"nope.bn": (torch.zeros(3), torch.ones(3))})
    with pytest.raises(BnStatsError, match="has 16 channels"):
        BnCopyPlan.build(supernet, {"first_conv.bn": (torch.zeros(17), torch.ones(17))})


def test_file_round_trip(supernet, tmp_path: Path) -> None:
    per_level = [collect_bn_stats(supernet, a) for a in (SubnetArch.smallest(SPEC), SubnetArch.largest(SPEC))]
    path = tmp_path / "bn.pt"
    save_bn_stats(path, per_level)
    loaded = load_bn_stats(path)
    assert len(loaded) == 2
    for got, want in zip(loaded, per_level):
        assert got.keys() == want.keys()
        for name in want:
            assert torch.equal(got[name][0], want[name][0]) and torch.equal(got[name][1], want[name][1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"0/a/mean": torch.zeros(2)}, "needs a mean and a var"),
        ({"0/a/mean": torch.zeros(2), "0/a/var": torch.zeros(3)}, "needs a mean and a var"),
        ({"x/a/mean": torch.zeros(2)}, "is not '<level>/<bn name>/mean|var'"),
        ({"1/a/mean": torch.zeros(2), "1/a/var": torch.zeros(2)}, r"level indices \[1\] are not 0..0"),
        ({"0/a/mean": torch.zeros(2, 2)}, "not a 1-D tensor"),
        ([torch.zeros(1)], "expected a dict"),
    ],
)
def test_bad_files(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bn.pt"
    torch.save(content, path)
    with pytest.raises(BnStatsError, match=message):
        load_bn_stats(path)


def test_missing_and_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_bn_stats(tmp_path / "absent.pt")
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(BnStatsError, match="corrupt or truncated"):
        load_bn_stats(tmp_path / "bad.pt")
