"""Width-only (slimmable) network: weight slicing, per-width BN recalibration, sandwich training, checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import _make_divisible

from dynofa_ros.offline.data import to_input
from dynofa_ros.offline.train import TrainConfig
from experiments.slimmable import (
    BaselineConfig,
    SlimmableNet,
    accuracy,
    calibrate_level,
    level_grid,
    load_baseline,
    sandwich_choices,
    save_baseline,
    train_elastic,
)
from experiments.static_refs import static_config

SMALL = BaselineConfig("mobilenet_v3_small", 0.35, 1.0, (32,))


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _copy_sliced(target: nn.Module, full: nn.Module) -> None:
    """Hand copy: every conv/linear/BN of ``target`` takes the leading channels of ``full``'s counterpart."""
    pairs = [(t, f) for t, f in zip(target.modules(), full.modules(), strict=True)
             if isinstance(t, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
    assert pairs
    with torch.no_grad():
        for t, f in pairs:
            assert type(t) is type(f)
            if isinstance(t, nn.Conv2d):
                t.weight.copy_(f.weight[:t.out_channels, :t.weight.shape[1]])
            elif isinstance(t, nn.Linear):
                t.weight.copy_(f.weight[:t.out_features, :t.in_features])
                t.bias.copy_(f.bias[:t.out_features])
            else:
                n = t.num_features
                t.weight.copy_(f.weight[:n])
                t.bias.copy_(f.bias[:n])
                t.running_mean.copy_(f.running_mean[:n])
                t.running_var.copy_(f.running_var[:n])


@pytest.mark.parametrize("width", [0.35, 0.5, 0.8])
def test_width_forward_equals_hand_copied_narrow_network(width: float) -> None:
    torch.manual_seed(0)
    model = SlimmableNet(SMALL).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a wrong slice of them shows
        for m in model.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    narrow = torchvision.models.mobilenet_v3_small(weights=None, num_classes=10, width_mult=width).eval()
    _copy_sliced(narrow, model.net)
    stem = narrow.features[0][0]
    assert stem.out_channels == _make_divisible(16 * width, 8)
    assert narrow.classifier[-1].out_features == 10
    x = torch.randn(3, 3, 32, 32)
    model.set_width(width)
    with torch.no_grad():
        expected = narrow(x)
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.allclose(model.extract(width).eval()(x), expected, atol=1e-5)
    # at full width the network is the shared one itself
    model.set_width(1.0)
    assert torch.equal(model(x), model.net(x))


def test_narrow_backward_touches_only_leading_channels() -> None:
    torch.manual_seed(0)
    model = SlimmableNet(SMALL).train()
    model.set_width(0.5)
    model(torch.randn(4, 3, 32, 32)).logsumexp(1).sum().backward()
    stem = model.net.features[0][0].weight.grad
    active = _make_divisible(16 * 0.5, 8)
    assert stem[:active].abs().sum() > 0
    assert stem[active:].abs().sum() == 0
    assert model.net.classifier[-1].weight.grad[:, _make_divisible(1024 * 0.5, 8):].abs().sum() == 0


def test_bn_recalibration_per_width() -> None:
    torch.manual_seed(0)
    model = SlimmableNet(SMALL).eval()
    images = _images(48)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    nets = {w: calibrate_level(model, w, 32, images, n=len(images), batch=16) for w in (0.5, 1.0)}
    # the stem's BN statistics are the exact batch statistics of its conv output on the calibration images
    x = to_input(torch.from_numpy(images), 32, SMALL.mean, SMALL.std)
    for w, net in nets.items():
        c = _make_divisible(16 * w, 8)
        y = F.conv2d(x, model.net.features[0][0].weight[:c], stride=2, padding=1)
        bn = net.features[0][1]
        assert torch.allclose(bn.running_mean, y.mean((0, 2, 3)), atol=1e-4)
        assert torch.allclose(bn.running_var, y.var((0, 2, 3), unbiased=False), rtol=1e-3, atol=1e-4)
    # deeper layers see different inputs at different widths: their statistics differ per width
    deep = [m for m in nets[0.5].modules() if isinstance(m, nn.BatchNorm2d)][-1]
    deep_full = [m for m in nets[1.0].modules() if isinstance(m, nn.BatchNorm2d)][-1]
    assert not torch.allclose(deep.running_var, deep_full.running_var[:deep.num_features], rtol=1e-2)
    # calibration works on extracted copies: the shared weights and buffers are untouched
    assert all(torch.equal(v, before[k]) for k, v in model.net.state_dict().items())
    assert 0.0 <= accuracy(nets[0.5], images, np.arange(48) % 10, 32, SMALL.mean, SMALL.std) <= 1.0


def test_sandwich_choices_and_level_grid() -> None:
    rng = random.Random(0)
    largest, smallest, *rand = sandwich_choices(SMALL, 3, rng)
    assert (largest.width, smallest.width) == (1.0, 0.35)
    assert len(rand) == 3 and all(0.35 <= c.width <= 1.0 and round(c.width * 100) == c.width * 100 for c in rand)
    drawn = {c.width for _ in range(300) for c in sandwich_choices(SMALL, 1, rng)[2:]}
    assert min(drawn) == 0.35 and max(drawn) == 1.0  # the grid's ends are reachable
    static = static_config("mbv3-small-0.5", 32)
    assert static.static and [c.width for c in sandwich_choices(static, 3, rng)] == [0.5]
    assert level_grid(static) == [(0.5, 32)]
    grid = level_grid(BaselineConfig("mobilenet_v3_small", 0.35, 1.0, (32, 40)))
    assert len(grid) == 14 and grid[0] == (0.35, 32) and grid[-1] == (1.0, 40)
    with pytest.raises(ValueError, match="outside the trained range"):
        level_grid(SMALL, [0.2])
    with pytest.raises(ValueError, match="unknown static reference"):
        static_config("resnet50")
    with pytest.raises(ValueError, match="unknown layout"):
        BaselineConfig("mobilenet_v2")


def test_train_elastic_and_checkpoint_roundtrip(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = BaselineConfig("mobilenet_v3_small", 0.35, 0.5, (32,))
    model = SlimmableNet(cfg)
    start = {k: v.clone() for k, v in model.net.state_dict().items()}
    images, labels = _images(16), np.arange(16) % 10
    calls = []

    def validate(m: SlimmableNet) -> dict[str, float]:
        calls.append(m.width)
        return {"val_top1_largest": accuracy(calibrate_level(m, 0.5, 32, images, 16), images, labels, 32,
                                             cfg.mean, cfg.std)}

    result = train_elastic(model, images, labels, TrainConfig(epochs=1, batch_size=8, eval_every=0), log_fn=str,
                           log_path=tmp_path / "log.jsonl", validate=validate)
    assert (result.epochs, result.steps) == (1, 2) and calls
    assert "val_top1_largest" in result.log[-1] and (tmp_path / "log.jsonl").read_text().count("\n") == 1
    weight = "features.0.0.weight"
    assert not torch.equal(model.net.state_dict()[weight], start[weight])
    path = save_baseline(tmp_path / "us.pt", model, "us-small", {"epochs": result.epochs})
    loaded = load_baseline(path)
    assert loaded.name == "us-small" and loaded.train == {"epochs": 1} and loaded.model.config == cfg
    for k, v in model.net.state_dict().items():
        expected = v.half().float() if v.is_floating_point() else v
        assert torch.equal(loaded.model.net.state_dict()[k], expected), k


def test_load_baseline_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_baseline(tmp_path / "missing.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a baseline checkpoint"):
        load_baseline(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_baseline(tmp_path / "junk.pt")
    model = SlimmableNet(SMALL)
    save_baseline(tmp_path / "us.pt", model, "x")
    data = torch.load(tmp_path / "us.pt", weights_only=True)
    data["config"]["layout"] = "mobilenet_v3_large"
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_baseline(tmp_path / "mismatch.pt")
