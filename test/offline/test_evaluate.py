"""BN calibration, top-1 evaluation and subnet cost."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline.calibrate import calibrate_bn, recalibrate_bn
from dynofa_ros.offline.data import ImageRows, fit_limit, to_input
from dynofa_ros.offline.evaluate import evaluate_arch, evaluate_many, subnet_cost, top1
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.spec import SupernetSpec


@pytest.fixture(scope="module")
def tiny_images(cifar_tiny_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    return images[::10], labels[::10]  # 30 images, 3 per class


def test_recalibration_sets_the_active_channels_statistics(tiny_supernet: torch.nn.Module,
                                                           tiny_spec: SupernetSpec,
                                                           tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    net = copy.deepcopy(tiny_supernet)
    arch = SubnetArch.smallest(tiny_spec)
    bn = net.first_conv.bn
    before = bn.running_mean.clone()
    recalibrate_bn(net, arch, tiny_images[0], n=20, batch=8, spec=tiny_spec)
    assert not torch.allclose(bn.running_mean, before)
    # the first conv's statistics are the mean of its outputs over the calibration images
    with torch.no_grad():
        x = to_input(torch.from_numpy(tiny_images[0]), arch.resolution, tiny_spec.mean, tiny_spec.std)
        picked = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:20]
        conv_out = net.first_conv.conv(x[picked])
    torch.testing.assert_close(bn.running_mean, conv_out.mean((0, 2, 3)), atol=1e-4, rtol=1e-3)

    stats = calibrate_bn(net, arch, tiny_images[0], n=20, batch=8, spec=tiny_spec)
    assert stats and all(torch.isfinite(m).all() and (v >= 0).all() for m, v in stats.values())
    with pytest.raises(ValueError, match="positive"):
        recalibrate_bn(net, arch, tiny_images[0], n=0)
    with pytest.raises(ValueError, match="uint8"):
        recalibrate_bn(net, arch, tiny_images[0].astype(np.float32))


def test_calibration_on_class_sorted_images_sees_the_whole_variance(tiny_supernet: torch.nn.Module,
                                                                    tiny_spec: SupernetSpec) -> None:
    # four classes of flat images, one brightness each, stored class by class as the training split is; all used
    brightness = torch.arange(4).repeat_interleave(16).view(-1, 1, 1, 1) * 60
    images = (brightness + torch.randint(0, 5, (64, 32, 32, 3), generator=torch.Generator().manual_seed(0)))
    images = images.to(torch.uint8)
    net = copy.deepcopy(tiny_supernet)
    arch = SubnetArch.smallest(tiny_spec)
    recalibrate_bn(net, arch, images.numpy(), n=64, batch=16, spec=tiny_spec)
    with torch.no_grad():
        conv_out = net.first_conv.conv(to_input(images, arch.resolution, tiny_spec.mean, tiny_spec.std))
    whole = conv_out.var((0, 2, 3), unbiased=False).sum().item()
    # batches of one class each would see only the noise: a small fraction of the variance
    assert net.first_conv.bn.running_var.sum().item() > 0.7 * whole


def test_top1_counts_correct_predictions(tiny_supernet: torch.nn.Module, tiny_spec: SupernetSpec,
                                         tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    net = copy.deepcopy(tiny_supernet)
    images, labels = tiny_images
    arch = SubnetArch.largest(tiny_spec)
    acc = evaluate_arch(net, arch, images, labels, images, tiny_spec, n_calib=20, batch=8)
    assert 0.0 <= acc <= 1.0
    with torch.no_grad():
        net.eval()
        predicted = net(to_input(torch.from_numpy(images), arch.resolution, tiny_spec.mean, tiny_spec.std)).argmax(1)
    assert top1(net, arch, images, predicted, tiny_spec, batch=7) == 1.0
    wrong = (predicted + 1) % tiny_spec.num_classes
    assert top1(net, arch, images, wrong, tiny_spec) == 0.0
    assert top1(net, arch, images, labels, tiny_spec) == pytest.approx((predicted.numpy() == labels).mean())
    with pytest.raises(ValueError, match="labels"):
        top1(net, arch, images, labels[:-1], tiny_spec)


def test_subnet_cost_and_evaluate_many(tiny_supernet: torch.nn.Module, tiny_spec: SupernetSpec,
                                       tiny_images: tuple[np.ndarray, np.ndarray]) -> None:
    net = copy.deepcopy(tiny_supernet)
    largest, smallest = SubnetArch.largest(tiny_spec), SubnetArch.smallest(tiny_spec)
    macs_l, params_l = subnet_cost(net, largest)
    macs_s, params_s = subnet_cost(net, smallest)
    assert macs_l > macs_s > 0 and params_l > params_s > 0
    same_res = SubnetArch(largest.ks, largest.e, largest.d, smallest.resolution)
    assert subnet_cost(net, same_res)[0] < macs_l and subnet_cost(net, same_res)[1] == params_l

    archs = [largest, smallest, SubnetArch.sample(tiny_spec, random.Random(1))]
    results = evaluate_many(net, archs, *tiny_images, tiny_images[0], tiny_spec, n_calib=16, progress=False)
    assert [r.arch for r in results] == archs
    assert all(0.0 <= r.top1 <= 1.0 and r.macs > 0 and r.params > 0 for r in results)
    assert results[0].macs == macs_l


def test_a_memory_mapped_split_read_by_rows_gives_the_same_figures(tiny_supernet: torch.nn.Module,
                                                                   tiny_spec: SupernetSpec,
                                                                   tiny_images: tuple[np.ndarray, np.ndarray],
                                                                   tmp_path: Path) -> None:
    images, labels = tiny_images
    np.save(tmp_path / "x.npy", np.concatenate([images, images[::-1]]))
    cache = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only, as the dataset cache is opened
    rows = ImageRows(cache, np.arange(len(images)))
    assert len(rows) == len(images) and np.array_equal(rows[3:5], images[3:5])
    assert np.array_equal(rows[np.array([4, 0])], images[[4, 0]]) and np.array_equal(np.asarray(rows), images)

    arch = SubnetArch.smallest(tiny_spec)
    from_array = calibrate_bn(copy.deepcopy(tiny_supernet), arch, images, n=20, batch=8, spec=tiny_spec)
    net = copy.deepcopy(tiny_supernet)
    from_rows = calibrate_bn(net, arch, rows, n=20, batch=8, spec=tiny_spec)
    for name, (mean, var) in from_array.items():
        torch.testing.assert_close(from_rows[name][0], mean)
        torch.testing.assert_close(from_rows[name][1], var)
    assert top1(net, arch, rows, labels, tiny_spec, batch=7) == top1(net, arch, images, labels, tiny_spec)


def test_the_fit_limit_counts_images_in_the_budget() -> None:
    assert fit_limit((224, 224, 3)) == (2 << 30) // (224 * 224 * 3)
    assert fit_limit((32, 32, 3), budget=3072 * 10) == 10
    assert fit_limit((224, 224, 3), budget=1) == 1
