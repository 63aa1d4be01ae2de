"""Shared fixtures: one tiny random-weight library per family and session (4 levels, 1 torch thread): ofa_mbv3 at
32-48 px with per-level heads, elastic_vit at 24-32 px."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dynofa_ros.supernet.synthetic import TINY_VIT_SPEC, random_library


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_library")
    random_library(directory, n_levels=4, seed=3, heads=True)
    return directory


@pytest.fixture(scope="session")
def tiny_vit_library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_vit_library")
    random_library(directory, TINY_VIT_SPEC, n_levels=4, seed=3)
    return directory


def _private_copy(directory: Path, target: Path) -> Path:
    """A copy of a library's folder (tests may damage it); returns its library.json."""
    shutil.copytree(directory, target)
    return target / "library.json"


@pytest.fixture()
def library_copy(tiny_library_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny ofa_mbv3 library."""
    return _private_copy(tiny_library_dir, tmp_path / "lib")


@pytest.fixture()
def vit_library_copy(tiny_vit_library_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny elastic ViT library."""
    return _private_copy(tiny_vit_library_dir, tmp_path / "vit_lib")
