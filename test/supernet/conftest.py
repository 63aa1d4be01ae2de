"""Shared fixtures: one tiny random-weight library per session (4 levels, 32-48 px, 1 torch thread)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dynofa_ros.supernet.synthetic import random_library


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_library_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny_library")
    random_library(directory, n_levels=4, seed=3, heads=True)
    return directory


@pytest.fixture()
def library_copy(tiny_library_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny library's folder (tests may damage it); returns library.json."""
    target = tmp_path / "lib"
    shutil.copytree(tiny_library_dir, target)
    return target / "library.json"
