"""Fit a supernet to a dataset's classes: its labels, and a new classifier when the class count differs.

A published ImageNet supernet names its 1 000 classes only by number, and a user's dataset may have other
classes altogether. ``adapt_to_dataset`` gives the spec the dataset's class names (they become the labels the
perception node publishes); when the number differs it swaps in a classifier for the dataset's classes, fitted
on the largest sub-network's features (a linear probe: cross-entropy, L-BFGS, the training images and their
mirror images) after its BN statistics are recalibrated on them. Everything before the classifier is kept.
``dynofa adapt`` (:mod:`dynofa_ros.offline.commands.adapt`) writes the result as our checkpoint (spec inside),
which every later stage reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from dynofa_ros.offline.calibrate import recalibrate_bn
from dynofa_ros.offline.heads import fit_head
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.family import OFA_MBV3
from dynofa_ros.supernet.heads import LevelHead, apply_head, final_linear
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet


@dataclass
class Adapted:
    """The adapted supernet and spec, and what was done: ``classifier`` is False when only the names changed."""

    supernet: nn.Module
    spec: SupernetSpec
    classifier: bool
    n_fit: int = 0


def with_classes(supernet: nn.Module, spec: SupernetSpec, class_names: tuple[str, ...]) -> tuple[nn.Module,
                                                                                                  SupernetSpec]:
    """A copy of ``supernet`` for ``class_names``: every weight kept, the classifier freshly initialised when the
    number of classes differs."""
    new_spec = replace(spec, num_classes=len(class_names), class_names=class_names)
    if len(class_names) == spec.num_classes:
        return supernet, new_spec
    fresh = build_supernet(new_spec)
    classifier = {f"{name}.{p}" for name, m in fresh.named_modules() if m is final_linear(fresh)
                  for p in ("weight", "bias")}
    kept = {k: v for k, v in supernet.state_dict().items() if k not in classifier}
    missing, unexpected = nn.Module.load_state_dict(fresh, kept, strict=False)  # ofa overrides it
    if set(missing) != classifier or unexpected:
        raise ValueError(f"cannot carry the weights over: missing {sorted(set(missing) - classifier)}, unexpected "
                         f"{unexpected}")
    return fresh.eval(), new_spec


def adapt_to_dataset(supernet: nn.Module, spec: SupernetSpec, class_names: tuple[str, ...], images: np.ndarray,
                     labels: np.ndarray, n_calib: int = 2000) -> Adapted:
    """The supernet labelled with ``class_names``; when their number differs from the spec's, with a classifier
    fitted on ``images``/``labels`` (uint8 N x H x W x 3, indices into ``class_names``) for the largest subnet
    (ofa_mbv3 only: ValueError for another family that needs one)."""
    if tuple(class_names) == spec.class_names:
        return Adapted(supernet, spec, classifier=False)
    if len(class_names) != spec.num_classes and spec.family != OFA_MBV3.name:
        raise ValueError(f"a new classifier is fitted for {OFA_MBV3.name} supernets only, not {spec.family}: train "
                         f"this one for the dataset's {len(class_names)} classes (dynofa train --net-classes)")
    net, new_spec = with_classes(supernet, spec, tuple(class_names))
    if new_spec.num_classes == spec.num_classes:
        return Adapted(net, new_spec, classifier=False)
    largest = SubnetArch.largest(new_spec)
    with torch.no_grad():
        saved = {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}
    recalibrate_bn(net, largest, images, min(n_calib, len(images)), spec=new_spec)
    head = fit_head(net, images, labels, largest.resolution, new_spec.mean, new_spec.std, progress=True)
    apply_head(net, LevelHead(head.weight, head.bias))
    nn.Module.load_state_dict(net, saved, strict=False)  # its own BN statistics stay; levels calibrate theirs
    return Adapted(net, new_spec, classifier=True, n_fit=len(images))
