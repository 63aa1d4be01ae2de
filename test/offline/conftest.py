"""Shared fixtures of the offline tests: a one-step supernet and a random-weight tiny elastic ViT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline.train import TrainConfig, train_supernet
from dynofa_ros.supernet.checkpoint import save_supernet
from dynofa_ros.supernet.family import ELASTIC_VIT
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet
from dynofa_ros.supernet.synthetic import TINY_VIT_SPEC

torch.set_num_threads(1)  # the test machine's two cores are shared; more threads only oversubscribe


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


@pytest.fixture(scope="session")
def tiny_vit_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our checkpoint of a random-weight :data:`~dynofa_ros.supernet.synthetic.TINY_VIT_SPEC` supernet, its weight
    matrices drawn with std 0.3 (the initialisation's 0.02 makes every sub-network predict one class)."""
    torch.manual_seed(0)
    supernet = ELASTIC_VIT.build(TINY_VIT_SPEC)
    with torch.no_grad():
        for weight in (p for p in supernet.parameters() if p.dim() > 1):
            weight.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("tiny_vit") / "supernet.pt"
    save_supernet(path, supernet, TINY_VIT_SPEC)
    return path
