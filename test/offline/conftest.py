"""Shared fixtures of the offline tests: a tiny CIFAR-10 ImageFolder tree and a one-step supernet."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch

from dynofa_ros.offline.data import default_tarball, load_image_folder
from dynofa_ros.offline.train import TrainConfig, train_supernet
from dynofa_ros.supernet.checkpoint import save_supernet
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

PER_CLASS = 30
torch.set_num_threads(1)  # the test machine's two cores are shared; more threads only oversubscribe


@pytest.fixture(scope="session")
def cifar_tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder tree ``<root>/<class>/NNNN.jpg``: the first 30 CIFAR-10 test JPEGs of each class."""
    tarball = default_tarball()
    if not tarball.is_file():
        pytest.skip(f"CIFAR-10 tarball not available at {tarball}")
    root = tmp_path_factory.mktemp("cifar_tiny")
    counts: dict[str, int] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) != 4 or parts[1] != "test":
                continue
            if counts.get(parts[2], 0) < PER_CLASS:
                counts[parts[2]] = counts.get(parts[2], 0) + 1
                (root / parts[2]).mkdir(exist_ok=True)
                (root / parts[2] / parts[3]).write_bytes(tar.extractfile(member).read())
            if len(counts) == 10 and min(counts.values()) == PER_CLASS:
                break
    return root


@pytest.fixture(scope="session")
def tiny_spec() -> SupernetSpec:
    """The default supernet with small elastic resolutions (fast on CPU)."""
    return SupernetSpec(resolutions=(32, 40))


@pytest.fixture(scope="session")
def tiny_trained(cifar_tiny_dir: Path, tiny_spec: SupernetSpec,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """(supernet trained for one sandwich step on 16 images, its shipped checkpoint). Do not mutate weights."""
    torch.manual_seed(0)
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    supernet = build_supernet(tiny_spec)
    work = tmp_path_factory.mktemp("tiny_train")
    config = TrainConfig(epochs=1, batch_size=16, n_calib=16, eval_every=0)
    train_supernet(supernet, tiny_spec, images[::18][:16], labels[::18][:16], images[1:20:2], labels[1:20:2],
                   config, work, log_fn=lambda _: None)
    save_supernet(work / "supernet.pt", supernet, tiny_spec)
    return supernet.eval(), work / "supernet.pt"


@pytest.fixture
def tiny_supernet(tiny_trained: tuple[torch.nn.Module, Path]) -> torch.nn.Module:
    """The one-step supernet (shared: deep-copy it before changing weights or BN statistics)."""
    return tiny_trained[0]
