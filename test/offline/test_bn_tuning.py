"""A level's own BN scale/shift: the fold into BN statistics is exact, training lowers the loss and leaves the
supernet's parameters alone, and calibrate/build-library record it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline import bn_tuning
from dynofa_ros.offline.bn_tuning import BnTuneConfig, fold_affine, scale_cap, tune_level_bn
from dynofa_ros.offline.calibrate import calibrate_bn
from dynofa_ros.offline.data import to_input
from dynofa_ros.offline.library_build import calibrate_and_test, calibration_note
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.bn import apply_bn_stats
from dynofa_ros.supernet.heads import final_linear, using_head
from dynofa_ros.supernet.spec import SupernetSpec


def test_fold_affine_matches_the_scaled_and_shifted_batch_norm() -> None:
    g = torch.Generator().manual_seed(0)
    c, eps = 64, 1e-5
    x = torch.randn(8, c, 5, 5, generator=g) * 3 + 1
    mean, var = torch.randn(c, generator=g), torch.rand(c, generator=g) * 4 + 1e-6
    gamma, beta = torch.randn(c, generator=g), torch.randn(c, generator=g)
    gamma[0] = 0.0  # a constant channel: no shift on it
    s = torch.minimum(torch.randn(c, generator=g), scale_cap(var, eps))
    s[1] = scale_cap(var, eps)[1]  # at the cap: folded variance 0
    b = torch.randn(c, generator=g)
    b[0] = 0.0
    want = F.batch_norm(x, mean, var, gamma * torch.exp(s), beta + b, False, 0.0, eps)
    new_mean, new_var = fold_affine(mean, var, eps, gamma, s, b)
    got = F.batch_norm(x, new_mean, new_var, gamma, beta, False, 0.0, eps)
    assert new_var.min() >= 0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)

    with pytest.raises(ValueError, match="cap"):
        fold_affine(mean, var, eps, gamma, scale_cap(var, eps) + 0.1, b)
    with pytest.raises(ValueError, match="gamma 0"):
        fold_affine(mean, var, eps, gamma, s, b + 1.0)


def test_config_refuses_bad_values() -> None:
    for bad in ({"epochs": 0}, {"lr": -1.0}, {"batch_size": 0}, {"epochs": float("nan")}):
        with pytest.raises(ValueError, match="positive"):
            BnTuneConfig(**bad)
    assert "3 epochs of 900" in BnTuneConfig().note(900)
    assert calibration_note(100, BnTuneConfig(), 900).startswith("100 cifar10-train images")
    assert "folded" in calibration_note(100, BnTuneConfig(), 900)


def test_tuning_fits_better_is_exact_after_folding_and_restores_the_supernet(
        tiny_trained: tuple[torch.nn.Module, Path], tiny_spec: SupernetSpec, cifar_tiny_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = load_image_folder(cifar_tiny_dir)[:2]
    images, labels = images[::3], labels[::3]  # 100 images
    net = copy.deepcopy(tiny_trained[0])
    arch = SubnetArch.smallest(tiny_spec)
    stats = calibrate_bn(net, arch, images, n=100, batch=50, spec=tiny_spec)
    params_before = {n: p.detach().clone() for n, p in net.named_parameters()}
    x = to_input(torch.as_tensor(images), arch.resolution, tiny_spec.mean, tiny_spec.std)
    y = torch.as_tensor(labels)

    def loss_now() -> float:
        with torch.no_grad():
            return F.cross_entropy(net.eval()(x), y).item()

    start = loss_now()
    seen: dict[str, torch.Tensor] = {}
    real_train = bn_tuning._train

    def train_and_record(*args: object) -> None:  # the logits of the trained (still parametrized) network
        real_train(*args)
        with torch.no_grad():
            seen["logits"] = net(x)

    monkeypatch.setattr(bn_tuning, "_train", train_and_record)
    folded, head = tune_level_bn(net, arch, stats, images, labels, tiny_spec,
                                 BnTuneConfig(epochs=20, lr=0.05, batch_size=50))

    for name, p in net.named_parameters():  # the convolutions, shared BN and classifier are as they were
        assert torch.equal(p, params_before[name]), name
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in net.modules())
    assert set(folded) == set(stats)
    assert any(not torch.equal(folded[k][0], stats[k][0]) for k in stats)
    with torch.no_grad(), using_head(net, head):  # the folded statistics reproduce the trained network
        arch.apply(net)
        apply_bn_stats(net, folded)
        torch.testing.assert_close(net.eval()(x), seen["logits"], rtol=1e-4, atol=1e-4)
        tuned = F.cross_entropy(net(x), y).item()
    assert tuned < start - 0.03  # a clear drop from near chance (ln 10); its size varies with the CPU's numerics
    assert not torch.equal(head.weight, final_linear(net).weight)


def test_calibrate_and_test_tunes_only_with_labels(tiny_trained: tuple[torch.nn.Module, Path],
                                                  tiny_spec: SupernetSpec, cifar_tiny_dir: Path) -> None:
    images, labels = load_image_folder(cifar_tiny_dir)[:2]
    net = copy.deepcopy(tiny_trained[0])
    arch = SubnetArch.smallest(tiny_spec)
    tune = BnTuneConfig(epochs=1, batch_size=100)
    with pytest.raises(ValueError, match="needs the heads"):
        calibrate_and_test(net, arch, images, 100, images[:50], labels[:50], tiny_spec, None, tune)
    fit = calibrate_and_test(net, arch, images[::3], 100, images[:50], labels[:50], tiny_spec, labels[::3], tune,
                             (images[1::3], labels[1::3]))
    assert fit.head is not None and 0 <= fit.top1 <= 1 and fit.val_top1 is not None and 0 <= fit.val_top1 <= 1
