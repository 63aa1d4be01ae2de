"""Training input: stratified split, random subsets, network input conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynofa_ros.offline.data import stratified_split, subset, to_input


def test_stratified_split_is_disjoint_balanced_and_seeded() -> None:
    labels = np.repeat(np.arange(10), 500)
    split = stratified_split(labels, val_size=500, seed=3)
    assert len(split.val) == 500 and len(split.train) == 4500
    assert not set(split.val) & set(split.train)
    assert sorted(np.concatenate([split.train, split.val]).tolist()) == list(range(5000))
    assert np.bincount(labels[split.val]).tolist() == [50] * 10
    np.testing.assert_array_equal(split.val, stratified_split(labels, 500, seed=3).val)
    assert not np.array_equal(split.val, stratified_split(labels, 500, seed=4).val)
    uneven = np.array([0] * 7 + [1] * 3)
    assert len(stratified_split(uneven, val_size=5).val) == 5
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(labels, val_size=0)


def test_subset_is_random_not_a_prefix() -> None:
    labels = np.repeat(np.arange(10), 100)
    picked = subset(np.arange(1000), 100, seed=0)
    assert len(picked) == len(set(picked)) == 100
    assert len(np.unique(labels[picked])) > 5
    assert len(subset(np.arange(10), None)) == 10


def test_to_input_normalises_and_resizes() -> None:
    mean, std = (0.5, 0.25, 0.75), (0.5, 0.25, 0.25)
    images = torch.tensor([round(m * 255) for m in mean], dtype=torch.uint8).expand(2, 8, 8, 3).contiguous()
    x = to_input(images, 16, mean, std)
    assert x.shape == (2, 3, 16, 16) and x.is_contiguous()
    assert x.abs().max() < 0.02
    white = to_input(torch.full((1, 4, 4, 3), 255, dtype=torch.uint8), 4, mean, std)
    assert torch.allclose(white[0, :, 0, 0], torch.tensor([1.0, 3.0, 1.0]))
    with pytest.raises(ValueError, match="uint8"):
        to_input(torch.zeros(1, 4, 4, 3), 4, mean, std)
