"""Fitting a level's classifier head: logistic regression on its features, scored through evaluate_arch."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline.calibrate import recalibrate_bn
from dynofa_ros.offline.evaluate import evaluate_arch, top1
from dynofa_ros.offline.heads import fit_head, fit_linear, penultimate_features
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.heads import LevelHead, final_linear, using_head
from dynofa_ros.supernet.spec import SupernetSpec


def test_fit_linear_solves_a_separable_problem() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 8, generator=g) * 3
    labels = torch.arange(300) % 3
    features = centres[labels] + torch.randn(300, 8, generator=g) * 0.5
    init = LevelHead(torch.zeros(3, 8), torch.zeros(3))
    head = fit_linear(features, labels, init, iterations=50)
    assert ((features @ head.weight.T + head.bias).argmax(1) == labels).float().mean() == 1.0
    assert torch.equal(init.weight, torch.zeros(3, 8))  # the start is not modified
    with pytest.raises(ValueError, match="as many labels as feature rows"):
        fit_linear(features, labels[:-1], init)


def test_fit_head_lowers_the_training_loss_and_leaves_the_net_alone(
        tiny_trained: tuple[torch.nn.Module, Path], tiny_spec: SupernetSpec, cifar_tiny_dir: Path) -> None:
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    images, labels = images[::3], labels[::3]  # 100 images
    net = copy.deepcopy(tiny_trained[0])
    arch = SubnetArch.smallest(tiny_spec)
    recalibrate_bn(net, arch, images, n=50, batch=25, spec=tiny_spec)
    linear = final_linear(net)
    shared = LevelHead(linear.weight.detach().clone(), linear.bias.detach().clone())

    head = fit_head(net, images, labels, arch.resolution, tiny_spec.mean, tiny_spec.std, iterations=30)
    assert torch.equal(linear.weight, shared.weight) and torch.equal(linear.bias, shared.bias)
    assert head.weight.shape == shared.weight.shape and head.bias.shape == shared.bias.shape
    plain = penultimate_features(net, images, arch.resolution, tiny_spec.mean, tiny_spec.std)
    mirrored = penultimate_features(net, images, arch.resolution, tiny_spec.mean, tiny_spec.std, mirror=True)
    assert plain.shape == (len(images), shared.weight.shape[1]) and not torch.allclose(plain, mirrored)
    features, targets = torch.cat([plain, mirrored]), torch.as_tensor(labels).repeat(2)

    def loss(h: LevelHead) -> float:
        return F.cross_entropy(features @ h.weight.T + h.bias, targets).item()

    assert loss(head) < loss(shared) - 0.1
    with using_head(net, head):
        fitted = top1(net, arch, images, labels, tiny_spec)
    assert fitted > top1(net, arch, images, labels, tiny_spec)
    # evaluate_arch with the labels does the same: calibrate, fit, score, restore the shared classifier
    scored = evaluate_arch(net, arch, images, labels, images, tiny_spec, n_calib=50, batch=25,
                           head_labels=labels)
    assert scored > evaluate_arch(net, arch, images, labels, images, tiny_spec, n_calib=50, batch=25)
    assert torch.equal(linear.weight, shared.weight)

