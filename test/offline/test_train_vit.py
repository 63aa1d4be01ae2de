"""Training an elastic ViT supernet: AdamW sandwich steps, its resumable state, and ``dynofa train`` with the
ViT preset; one-line errors for unknown nets and families."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynofa_ros.offline.cli import main
from dynofa_ros.offline.data import to_input
from dynofa_ros.offline.train import TrainConfig, library_teacher, make_optimizer, sandwich_step, train_supernet
from dynofa_ros.offline.train_state import MOMENTUM, STATE_FILES, load_train_state, read_progress
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.elastic_vit import ElasticViT
from dynofa_ros.supernet.family import family_of, named_spec
from dynofa_ros.supernet.library import library_path
from dynofa_ros.supernet.runtime import DynamicNetwork
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.vit_arch import ElasticViTSpec

from ..data_util import cifar_split_folder

TINY = ElasticViTSpec(embed_dim_list=(16, 24), depth_list=(1, 2), heads_list=(1, 2), mlp_ratio_list=(1, 2),
                      head_dim=8, tokenizer_channels=8, resolutions=(16, 24))
QUIET = {"log_fn": lambda _: None}


def _random_data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8), rng.integers(0, 10, n)


def test_adamw_sandwich_steps_lower_the_loss_and_resume(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _random_data()
    supernet = ElasticViT(TINY)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    config = TrainConfig(epochs=4, batch_size=16, optimizer="adamw", lr=3e-3, warmup_epochs=0.5, eval_every=0)
    assert config.weight_decay == 0.05 and TrainConfig().lr == 0.4  # each optimizer's default
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="adam")
    first = train_supernet(supernet, TINY, x, y, x[:8], y[:8], config, tmp_path, **QUIET)
    losses = [r["loss_ce_largest"] for r in first.log]
    assert first.steps == 8 and losses[-1] < losses[0] and all(r["loss_kd_sum"] >= 0 for r in first.log)
    assert 0.0 <= first.log[-1]["val_top1_largest"] <= 1.0 and 0.0 <= first.log[-1]["val_top1_smallest"] <= 1.0
    assert all(not torch.equal(before[k], v) for k, v in supernet.state_dict().items())
    assert all((tmp_path / f).is_file() for f in STATE_FILES)
    assert read_progress(tmp_path)["recipe"]["optimizer"] == "adamw"

    state = torch.load(tmp_path / MOMENTUM, weights_only=True)
    name = "layers.1.fc1.weight"
    assert state[f"{name}:exp_avg_sq"].dtype == torch.bfloat16 and state[f"{name}:step"].item() == 8
    restored = ElasticViT(TINY)
    optimizer = make_optimizer(restored, config)
    load_train_state(tmp_path, restored, TINY, optimizer)
    param = dict(restored.named_parameters())[name]
    torch.testing.assert_close(optimizer.state[param]["exp_avg"], state[f"{name}:exp_avg"].float())
    loaded, spec = load_supernet(tmp_path / "supernet.pt")
    assert spec == TINY and isinstance(loaded, ElasticViT)

    longer = TrainConfig(**{**config.__dict__, "epochs": 5})
    resumed = train_supernet(supernet, TINY, x, y, x[:8], y[:8], longer, tmp_path, resume=True, **QUIET)
    assert [r["epoch"] for r in resumed.log] == [5] and read_progress(tmp_path)["step"] == 10
    with pytest.raises(ValueError, match="trained with adamw, whose state does not fit sgd"):
        train_supernet(supernet, TINY, x, y, x, y, TrainConfig(epochs=6, batch_size=16), tmp_path, resume=True,
                       **QUIET)


def test_largest_epochs_train_the_largest_alone_then_the_sandwich(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _random_data()
    supernet = ElasticViT(TINY)
    config = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", largest_epochs=2, eval_every=0)
    log = train_supernet(supernet, TINY, x, y, x[:8], y[:8], config, tmp_path, **QUIET).log
    assert [r["loss_kd_sum"] == 0 for r in log] == [True, True, False]  # no students in the first two epochs
    with pytest.raises(ValueError, match="largest_epochs"):
        TrainConfig(largest_epochs=-1)


def test_a_teacher_guides_every_subnet_of_the_sandwich() -> None:
    torch.manual_seed(0)
    x, y = _random_data(16)
    images, target = torch.from_numpy(x), torch.from_numpy(y)
    supernet, family = ElasticViT(TINY).eval(), family_of(TINY)  # eval: no dropout, the same logits each pass
    choices = [family.largest(TINY), family.smallest(TINY)]
    fixed = torch.randn(16, 10)
    teacher = F.log_softmax(fixed, dim=1)

    def step(weight: float, guide: object) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        supernet.zero_grad(set_to_none=True)
        config = TrainConfig(optimizer="adamw", teacher_weight=weight)
        kd = sandwich_step(supernet, choices[:1] if weight < 0.5 else choices, lambda a: family.apply(supernet, a),
                           images, target, config, TINY.mean, TINY.std, False, guide)[1]
        return {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}, kd

    # weight 0: the largest learns from the labels alone, as without a teacher
    alone, _ = step(0.0, None)
    guided, _ = step(0.0, lambda _: fixed)
    assert alone.keys() == guided.keys() and all(torch.allclose(alone[k], guided[k]) for k in alone)
    # the smallest is distilled from the teacher's soft targets, not from the largest's
    _, kd = step(1.0, lambda _: fixed)
    family.apply(supernet, choices[1])
    with torch.no_grad():
        student = F.log_softmax(supernet(to_input(images, choices[1].resolution, TINY.mean, TINY.std)), dim=1)
    torch.testing.assert_close(kd, F.kl_div(student, teacher, reduction="batchmean", log_target=True))
    with pytest.raises(ValueError, match="teacher_weight"):
        TrainConfig(teacher_weight=1.5)


def test_a_library_level_teaches_what_the_runtime_predicts() -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    teach = library_teacher("mbv3", "L0", num_classes=10)
    served = DynamicNetwork.from_library(library_path("mbv3"), mode="cache", backend="torch", initial_level="L0")
    expected = [p.class_ids[0] for p in served.classify_batch(list(frames))]
    assert teach(torch.from_numpy(frames)).argmax(1).tolist() == expected
    with pytest.raises(ValueError, match="has 10 classes, the supernet 100"):
        library_teacher("mbv3", None, num_classes=100)


def test_sgd_state_of_a_vit_keeps_the_momentum_layout(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x, y = _random_data(16)
    supernet = ElasticViT(TINY)
    train_supernet(supernet, TINY, x, y, x, y, TrainConfig(epochs=1, batch_size=16, eval_every=0), tmp_path, **QUIET)
    state = torch.load(tmp_path / MOMENTUM, weights_only=True)
    assert set(state) == {n for n, _ in supernet.named_parameters()}
    assert all(v.dtype == torch.float16 for v in state.values())


@pytest.fixture(scope="module")
def tiny_data(cifar_tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cifar_split_folder(cifar_tiny_dir, tmp_path_factory.mktemp("data"), test_every=10)


def _train(tiny_data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data", str(tiny_data), "--cache-dir", str(out.parent / "cache"), "--device", "cpu",
                 "--batch-size", "16", "--max-train-images", "32", "--val-size", "20", "--out", str(out), *extra])


def test_dynofa_train_trains_the_vit_preset_resumably(tiny_data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    assert _train(tiny_data, out, "--net", "vit-cifar10-cpu", "--epochs", "1", "--teacher", "mbv3") == 0
    _, spec = load_supernet(out / "supernet.pt")
    assert spec == named_spec("vit-cifar10-cpu")
    recipe = read_progress(out)["recipe"]
    assert (recipe["optimizer"], recipe["lr"], recipe["weight_decay"]) == ("adamw", 1e-3, 0.05)
    assert (recipe["teacher"], recipe["teacher_level"], recipe["teacher_weight"]) == ("mbv3", None, 0.5)
    assert _train(tiny_data, out, "--net", "vit-cifar10-cpu", "--epochs", "2", "--resume", "--teacher", "mbv3") == 0
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and "val_top1_smallest" in records[-1]
    assert "resumed from" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--net", "vit-cifar10"], "unknown net 'vit-cifar10'; known: cifar10, "),
    (["--net", "vit-cifar10-cpu", "--net-ks", "3"], "--net-ks: not a field of the elastic_vit family's spec"),
    (["--init", "FOREIGN"], "unknown supernet family 'resnet50'; known: ofa_mbv3, elastic_vit"),
])
def test_unknown_nets_and_families_are_one_line_errors(tiny_data: Path, tmp_path: Path, args: list[str],
                                                       message: str, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "dynofa-supernet/1", "spec": {**SupernetSpec().to_dict(), "family": "resnet50"},
                "state_dict": {}}, foreign)
    args = [str(foreign) if a == "FOREIGN" else a for a in args]
    assert _train(tiny_data, tmp_path / "run", *args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("dynofa train: error: ")
