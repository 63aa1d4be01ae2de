"""Training schedule, augmentation, a few real sandwich steps, resume and export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.datasets.images import load_image_folder
from dynofa_ros.offline import train as train_module
from dynofa_ros.offline.data import DeviceAugmenter
from dynofa_ros.offline.train import (
    TrainConfig,
    TrainResult,
    faster_memory_format,
    lr_at,
    make_optimizer,
    param_groups,
    plan_epochs,
    plan_from_steps,
    train_supernet,
)
from dynofa_ros.offline.train_state import STATE_FILES, Progress, load_train_state, read_progress, save_train_state
from dynofa_ros.supernet.checkpoint import load_supernet, save_supernet
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet


def test_lr_warmup_then_cosine_to_zero() -> None:
    lrs = [lr_at(s, 0.4, 10, 100) for s in range(101)]
    assert lrs[0] == pytest.approx(0.04) and lrs[9] == pytest.approx(0.4)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[55] == pytest.approx(0.2) and lrs[100] == pytest.approx(0.0)
    short = [lr_at(s, 0.4, 20, 10) for s in range(11)]  # a warm-up longer than the schedule: half of it
    assert short[4] == pytest.approx(0.4) and short[10] == pytest.approx(0.0)


def test_plan_epochs_fits_the_budget_ignoring_the_warmup_epoch() -> None:
    assert plan_epochs(0, [], 0.0, 100.0, 50) == 50
    assert plan_epochs(1, [60.0], 60.0, 400.0, 200) == 6  # only the slow first epoch known
    assert plan_epochs(2, [60.0, 10.0], 70.0, 400.0, 200) == 35  # 2 done + 330 s / 10 s
    assert plan_epochs(2, [60.0, 10.0], 70.0, 400.0, 20) == 20
    assert plan_epochs(3, [60.0, 10.0, 10.0], 500.0, 400.0, 200) == 3  # over budget: stop now
    assert plan_epochs(2, [1.0, 1.0], 2.0, None, 7) == 7


def test_plan_from_early_steps_keeps_at_least_the_current_epoch() -> None:
    assert plan_from_steps(0, 2.0, 100, 0.0, 450.0, 40) == 2  # 200 s epochs
    assert plan_from_steps(0, 2.0, 100, 0.0, 100.0, 40) == 1  # not even one fits: the cosine ends with this one
    assert plan_from_steps(0, 0.01, 100, 0.0, 450.0, 40) == 40
    assert plan_from_steps(2, 1.0, 100, 250.0, 700.0, 40) == 6  # 2 done + 450 s left / 100 s


def test_a_budget_shorter_than_an_epoch_still_anneals_to_zero(cifar_tiny_dir: Path, tiny_spec: SupernetSpec,
                                                              tmp_path: Path) -> None:
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    config = TrainConfig(epochs=40, batch_size=4, lr=0.05, warmup_epochs=0.1, n_calib=8, eval_every=0,
                         time_budget_s=1e-3)  # 8 steps per epoch; the plan comes from steps 1-2 of the first
    result = train_supernet(build_supernet(tiny_spec), tiny_spec, images[:32], labels[:32], images[:8], labels[:8],
                            config, tmp_path, log_fn=lambda _: None)
    record = result.log[0]
    assert result.epochs == 1 and record["planned_epochs"] == 1 and record["schedule_epochs"] == 1
    assert record["lr"] == pytest.approx(lr_at(7, 0.05, 1, 8)) and record["lr"] < 0.003  # the cosine's last step


def test_the_first_epoch_plan_comes_from_its_early_step_times(cifar_tiny_dir: Path, tiny_spec: SupernetSpec,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Clock:  # each reading 1 s after the last: start 1, epoch start 2, probe 3 and 4 -> 0.5 s/step, 4 s/epoch
        def __init__(self) -> None:
            self.now = 0.0

        def perf_counter(self) -> float:
            self.now += 1.0
            return self.now

    images, labels, _ = load_image_folder(cifar_tiny_dir)

    def run(budget_s: float) -> tuple[TrainResult, list[str]]:
        monkeypatch.setattr(train_module, "time", Clock())
        config = TrainConfig(epochs=40, batch_size=4, lr=0.05, warmup_epochs=0.1, n_calib=8, eval_every=0,
                             time_budget_s=budget_s)  # 8 steps per epoch
        messages: list[str] = []
        result = train_supernet(build_supernet(tiny_spec), tiny_spec, images[:32], labels[:32], images[:8],
                                labels[:8], config, tmp_path / str(budget_s), log_fn=messages.append)
        return result, messages

    result, messages = run(12.0)  # 12 s - 1 s before the epoch = 11 s: two 4-s epochs
    assert result.log[0]["schedule_epochs"] == 2 and "fitted schedule: 2 epoch(s) in the 12 s budget" in messages[0]
    # 8 s: one epoch planned; the end-of-epoch re-plan (3 s measured, 3 s left) would allow a second, but the
    # cosine has ended with the first: the run stops instead of restarting it
    result, _ = run(8.0)
    assert result.epochs == 1 and result.log[0]["schedule_epochs"] == 1 and result.log[0]["lr"] < 0.003


def test_augmenter_crops_inside_the_padding_and_flips() -> None:
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    aug = DeviceAugmenter(images, torch.device("cpu"), pad=0)
    out = aug(torch.tensor([1, 0, 1, 1, 0, 1, 0, 0]), torch.Generator().manual_seed(0))
    assert out.shape == (8, 4, 4, 3) and out.dtype == torch.uint8
    seen_flip = False
    for got, src in zip(out.numpy(), [1, 0, 1, 1, 0, 1, 0, 0], strict=True):
        assert np.array_equal(got, images[src]) or np.array_equal(got, images[src][:, ::-1])
        seen_flip |= np.array_equal(got, images[src][:, ::-1])
    assert seen_flip
    padded = DeviceAugmenter(images, torch.device("cpu"), pad=4)(torch.arange(2), torch.Generator())
    assert padded.shape == (2, 4, 4, 3)


def test_no_weight_decay_on_bn_and_bias() -> None:
    groups = param_groups(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)), 1e-4)
    assert [len(g["params"]) for g in groups] == [1, 3]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]


def test_training_lowers_loss_resumes_and_exports(cifar_tiny_dir: Path, tiny_spec: SupernetSpec,
                                                   tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    x, y = images[::9][:32], labels[::9][:32]
    supernet = build_supernet(tiny_spec)
    config = TrainConfig(epochs=3, batch_size=32, lr=0.05, warmup_epochs=1, n_calib=16, eval_every=0)
    first = train_supernet(supernet, tiny_spec, x, y, x[:8], y[:8], config, tmp_path, log_fn=lambda _: None)
    assert first.epochs == 3 and first.steps == 3 and all((tmp_path / f).is_file() for f in STATE_FILES)
    losses = [r["loss_ce_largest"] for r in first.log]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert 0.0 <= first.log[-1]["val_top1_largest"] <= 1.0  # the final epoch is always validated

    longer = TrainConfig(**{**config.__dict__, "epochs": 4})
    resumed = train_supernet(supernet, tiny_spec, x, y, x[:8], y[:8], longer, tmp_path, resume=True,
                             log_fn=lambda _: None)
    assert resumed.epochs == 4 and resumed.steps == 4 and [r["epoch"] for r in resumed.log] == [4]
    assert read_progress(tmp_path)["epoch"] == 4
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="different supernet spec"):
        train_supernet(build_supernet(SupernetSpec()), SupernetSpec(), x, y, x, y, longer, tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train_supernet(supernet, tiny_spec, x, y, x, y, config, tmp_path / "empty", resume=True)

    save_supernet(tmp_path / "supernet.pt", supernet, tiny_spec)
    loaded, spec = load_supernet(tmp_path / "supernet.pt")
    assert spec == tiny_spec
    weight = "first_conv.conv.weight"
    torch.testing.assert_close(loaded.state_dict()[weight], supernet.state_dict()[weight], atol=1e-3, rtol=1e-2)
    assert (tmp_path / "supernet.pt").stat().st_size < 14e6


def test_fixed_schedule_continues_across_calls_with_its_momentum(cifar_tiny_dir: Path, tiny_spec: SupernetSpec,
                                                                  tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    x, y = images[::9][:32], labels[::9][:32]
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05, warmup_epochs=1, n_calib=16, eval_every=0,
                         schedule="fixed")
    quiet = {"log_fn": lambda _: None}
    # one run of 4 epochs straight through ...
    torch.manual_seed(1)
    straight = train_supernet(build_supernet(tiny_spec), tiny_spec, x, y, x[:8], y[:8], config, tmp_path / "a",
                              **quiet)
    # ... and the same schedule as two calls of 2 epochs each, the second in another folder ("machine")
    torch.manual_seed(1)
    half = TrainConfig(**{**config.__dict__, "time_budget_s": 1e-9})  # the budget stops each call early
    first = train_supernet(build_supernet(tiny_spec), tiny_spec, x, y, x[:8], y[:8], half, tmp_path / "b", **quiet)
    assert first.epochs == 1 and first.log[0]["schedule_epochs"] == 4  # the cosine still spans 4 epochs
    second_net = build_supernet(tiny_spec)
    second = train_supernet(second_net, tiny_spec, x, y, x[:8], y[:8], config, tmp_path / "c",
                            resume_from=tmp_path / "b", **quiet)
    assert [r["epoch"] for r in second.log] == [2, 3, 4]
    assert [r["lr"] for r in first.log + second.log] == pytest.approx([r["lr"] for r in straight.log])
    assert read_progress(tmp_path / "c")["step"] == straight.steps
    assert not list((tmp_path / "c").glob("*.partial"))
    with pytest.raises(ValueError, match="schedule of 4 epochs .* is already complete"):
        train_supernet(build_supernet(tiny_spec), tiny_spec, x, y, x, y, config, tmp_path / "e",
                       resume_from=tmp_path / "c", **quiet)
    with pytest.raises(ValueError, match="train_images=32 \\(now 24\\)"):  # the step count would change
        train_supernet(build_supernet(tiny_spec), tiny_spec, x[:24], y[:24], x, y, config, tmp_path / "e",
                       resume_from=tmp_path / "b", **quiet)

    momentum = torch.load(tmp_path / "b" / "momentum.pt", weights_only=True)
    optimizer = make_optimizer(second_net, config)
    load_train_state(tmp_path / "b", second_net, tiny_spec, optimizer)
    name, param = next(iter(second_net.named_parameters()))
    torch.testing.assert_close(optimizer.state[param]["momentum_buffer"], momentum[name].float())
    assert all(momentum[n].dtype == torch.float16 for n in momentum)
    assert all((tmp_path / "b" / f).stat().st_size < 16 * 2**20 for f in STATE_FILES)

    with pytest.raises(ValueError, match=r"fixed schedule with epochs=4 \(now 6\)"):
        train_supernet(build_supernet(tiny_spec), tiny_spec, x, y, x, y, TrainConfig(**{**config.__dict__,
                       "epochs": 6}), tmp_path / "d", resume_from=tmp_path / "b", **quiet)


def test_corrupt_foreign_or_torn_train_state_is_a_clear_error(tiny_spec: SupernetSpec, tmp_path: Path) -> None:
    net = build_supernet(tiny_spec)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        load_train_state(tmp_path, net, tiny_spec)
    save_train_state(tmp_path, net, tiny_spec, make_optimizer(net, TrainConfig()), Progress(1, 2), {})
    assert load_train_state(tmp_path, net, tiny_spec) == Progress(1, 2, 0.0, [])
    with pytest.raises(ValueError, match="different supernet spec"):
        load_train_state(tmp_path, build_supernet(SupernetSpec()), SupernetSpec())

    other = tmp_path / "other"  # a weights file from another run next to this progress record
    save_train_state(other, net, tiny_spec, make_optimizer(net, TrainConfig()), Progress(), {})
    (tmp_path / "momentum.pt").write_bytes((other / "momentum.pt").read_bytes() + b"x")
    with pytest.raises(ValueError, match=r"momentum.pt does not match progress.json"):
        load_train_state(tmp_path, net, tiny_spec)
    (tmp_path / "momentum.pt").unlink()
    with pytest.raises(FileNotFoundError, match="momentum.pt is missing"):
        load_train_state(tmp_path, net, tiny_spec)
    (tmp_path / "progress.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_train_state(tmp_path, net, tiny_spec)
    (tmp_path / "progress.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a dynofa training state"):
        load_train_state(tmp_path, net, tiny_spec)
    x = np.zeros((32, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="not a dynofa training state"):
        train_supernet(build_supernet(tiny_spec), tiny_spec, x, np.zeros(32), x, np.zeros(32),
                       TrainConfig(epochs=1, batch_size=32), tmp_path, resume=True, log_fn=lambda _: None)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="linear")


def test_memory_format_probe_keeps_the_faster_working_format() -> None:
    model = torch.nn.Conv2d(3, 4, 3)
    messages: list[str] = []

    def slow_contiguous(channels_last: bool) -> None:
        time.sleep(0 if channels_last else 0.02)

    assert faster_memory_format(slow_contiguous, model, torch.device("cpu"), log_fn=messages.append) is True
    assert "-> channels_last" in messages[-1]

    def channels_last_fails(channels_last: bool) -> None:
        if channels_last:
            raise RuntimeError("no NHWC kernel")

    assert faster_memory_format(channels_last_fails, model, torch.device("cpu"), log_fn=messages.append) is False
    assert "channels_last failed (no NHWC kernel)" in messages[-2] and "-> contiguous" in messages[-1]
    with pytest.raises(RuntimeError, match="both memory formats"):
        faster_memory_format(lambda _: channels_last_fails(True), model, torch.device("cpu"), log_fn=messages.append)


def test_training_with_the_probed_memory_format(cifar_tiny_dir: Path, tiny_spec: SupernetSpec, tmp_path: Path) -> None:
    images, labels, _ = load_image_folder(cifar_tiny_dir)
    messages: list[str] = []
    config = TrainConfig(epochs=1, batch_size=16, n_calib=16, eval_every=0, memory_format="auto")
    result = train_supernet(build_supernet(tiny_spec), tiny_spec, images[:32], labels[:32], images[:8], labels[:8],
                            config, tmp_path, log_fn=messages.append)
    assert result.steps == 2 and np.isfinite(result.log[0]["loss_ce_largest"])
    assert any(m.startswith("memory format probe: contiguous") and "channels_last" in m for m in messages)
    with pytest.raises(ValueError, match="memory_format must be one of"):
        TrainConfig(memory_format="nhwc")


def test_rejects_too_few_images(tiny_spec: SupernetSpec, tmp_path: Path) -> None:
    x = np.zeros((4, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_supernet(build_supernet(tiny_spec), tiny_spec, x, np.zeros(4), x, np.zeros(4),
                       TrainConfig(batch_size=8), tmp_path)
