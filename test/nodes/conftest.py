"""Fixtures for the node tests: a tiny random-weight subnet library (tests only, never shipped)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest


def build_tiny_library(directory: Path) -> Path:
    """A 2-level random-weight library (smallest subnet at 32 and 40 px, as test/supernet builds it), with
    made-up top-1 values (0.5, 0.6) because the manager needs them; returns library.json."""
    from dynofa_ros.supernet.arch import SubnetArch
    from dynofa_ros.supernet.synthetic import TINY_SPEC, random_library

    small = SubnetArch.smallest(TINY_SPEC)
    lib = random_library(directory, archs=[small, dataclasses.replace(small, resolution=40)], seed=0)
    lib.levels = [dataclasses.replace(lv, top1=0.5 + 0.1 * i) for i, lv in enumerate(lib.levels)]
    return lib.save(directory / "library.json")


@pytest.fixture(scope="session")
def tiny_library(tmp_path_factory) -> Path:
    return build_tiny_library(tmp_path_factory.mktemp("tiny_library"))


@pytest.fixture(scope="session")
def tiny_vit_library(tmp_path_factory) -> Path:
    """A 3-level random-weight elastic-ViT library with made-up top-1 values (0.5, 0.6, 0.7); returns library.json."""
    from dynofa_ros.supernet.synthetic import TINY_VIT_SPEC, random_library

    directory = tmp_path_factory.mktemp("tiny_vit_library")
    lib = random_library(directory, TINY_VIT_SPEC, n_levels=3, seed=0)
    lib.levels = [dataclasses.replace(lv, top1=0.5 + 0.1 * i) for i, lv in enumerate(lib.levels)]
    return lib.save(directory / "library.json")
