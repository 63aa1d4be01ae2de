"""Sandwich-rule training of a supernet of any family (:mod:`dynofa_ros.supernet.family`) with in-place distillation.

Recipe, and why (the reasons are given for the OFA MobileNetV3 supernet; the elastic ViT differs where said):

* Each step trains the largest subnet (at the largest resolution) on the labels with label
  smoothing 0.1, then the smallest subnet (smallest resolution) and ``num_random`` random subnets
  (random resolution each) on the largest's soft targets (KL). The sandwich rule bounds the space
  from both ends; in-place distillation needs no separate teacher.
* ``teacher`` (default none) names a library level (e.g. the shipped CNN's) whose soft targets on each augmented
  batch guide the whole space: the largest learns from ``(1 - teacher_weight)`` x labels + ``teacher_weight`` x
  the teacher (KL), the other sub-networks from the teacher alone. In-place distillation distils from a largest
  sub-network that is itself still poor early on; a trained teacher gives every sub-network good targets from the
  first step (the DeiT recipe for Transformers trained on little data).
* ``largest_epochs`` (default 0) first trains the largest subnet alone for that many epochs, then the sandwich
  (the first phase of OFA's progressive shrinking): training the shared weights for the smallest subnet from the
  first step holds the largest back (elastic ViT on CIFAR-10, 150 steps of 128 images: 22 % top-1 for the largest
  under the sandwich, 34 % trained alone).
* ``num_random=1`` (3 forward/backward passes per step, not 4): at a fixed wall-clock budget this
  buys ~25 % more epochs, and a short run is limited by epochs far more than by how many middle
  subnets each step sees (the middle of the space shares nearly all weights with both ends).
* Batch 1024, SGD nesterov momentum 0.9, peak LR 0.4 (0.1 per 256 images, the usual SGD rate for
  MobileNets; the three subnet losses are summed, so shared weights already take larger steps: a
  higher peak risks divergence in a run that must work first time), linear warm-up over 2 epochs,
  cosine to 0 exactly when the time budget ends (epoch time measured after the first epochs, the
  plan re-estimated every epoch). Gradient-norm clipping at 5 is a cheap safety net.
* The elastic ViT trains with AdamW instead (peak LR 1e-3, weight decay 0.05, same warm-up and cosine): without
  batch norm a Transformer's layers get gradients of very different scales, which SGD follows poorly. Each family
  names its default optimizer; ``optimizer`` overrides it, and the learning rate and weight decay default to the
  optimizer's (:data:`OPTIMIZER_DEFAULTS`).
* ``schedule="fixed"`` instead spans the cosine over ``epochs`` epochs whatever the budget: a long run split
  over several time-limited jobs (e.g. a shared GPU queue) continues one schedule, with its momentum,
  from the portable state folder (:mod:`dynofa_ros.offline.train_state`) the previous call left.
* Weight decay 1e-4, the upper end of the usual MobileNet range: CIFAR-10's 45 000 images with only
  crop+flip augmentation make over-fitting of the largest subnet the main risk; BN parameters and
  biases are not decayed (decay would only shrink scales/shifts, not regularise capacity).
* bf16 autocast on CUDA (no loss scaling needed), fp32 on CPU. The data live on the device as uint8;
  crop (4-px zero padding) and flip are one gather per batch, then normalisation and bilinear
  upsampling on the device. ``cudnn.benchmark`` stays off: it re-tunes every new subnet shape.
  ``memory_format="auto"`` times a few sandwich steps with contiguous (NCHW) and channels-last (NHWC) tensors
  before training and keeps the faster (depth-wise convolutions in bf16 can differ a lot between the two).
* Running BN statistics from training are meaningless for subnets; the quick validation recalibrates
  BN on ``n_calib`` training images before measuring top-1 on the held-out split. A family without batch norm
  (the ViT: layer norm only) is measured as it is.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dynofa_ros.offline.data import DeviceAugmenter, to_input
from dynofa_ros.offline.evaluate import accuracy, evaluate_arch
from dynofa_ros.offline.timing import cuda_sync, time_calls
from dynofa_ros.offline.train_state import Progress, load_train_state, save_train_state
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.family import Arch, Spec, family_of
from dynofa_ros.supernet.library import SubnetLibrary, library_path
from dynofa_ros.supernet.runtime import extract_subnet, library_bn_stats, library_heads

SCHEDULES = ("fit", "fixed")
MEMORY_FORMATS = ("contiguous", "channels_last", "auto")
# the peak learning rate and weight decay each optimizer defaults to (SGD: at batch 1024; AdamW: at 256 to 1024)
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {"sgd": {"lr": 0.4, "weight_decay": 1e-4},
                                                   "adamw": {"lr": 1e-3, "weight_decay": 0.05}}
OPTIMIZERS = tuple(OPTIMIZER_DEFAULTS)
# a frozen teacher: logits of an augmented N x H x W x 3 uint8 batch
Teacher = Callable[[torch.Tensor], torch.Tensor]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN/inf; the last good epoch is still in the state file."""


@dataclass
class TrainConfig:
    """Training hyper-parameters (see the module docstring for the reasons behind the defaults). ``lr`` and
    ``weight_decay`` left None take the optimizer's defaults; ``momentum`` is SGD's."""

    epochs: int = 40
    time_budget_s: float | None = None
    batch_size: int = 1024
    lr: float | None = None
    warmup_epochs: float = 2.0
    weight_decay: float | None = None
    momentum: float = 0.9
    label_smoothing: float = 0.1
    num_random: int = 1
    largest_epochs: float = 0.0
    grad_clip: float = 5.0
    eval_every: int = 5
    n_calib: int = 2000
    seed: int = 0
    memory_format: str = "contiguous"
    schedule: str = "fit"
    optimizer: str = "sgd"
    teacher: str | None = None
    teacher_level: str | None = None
    teacher_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        defaults = OPTIMIZER_DEFAULTS[self.optimizer]
        self.lr = defaults["lr"] if self.lr is None else self.lr
        self.weight_decay = defaults["weight_decay"] if self.weight_decay is None else self.weight_decay
        if self.epochs <= 0 or self.batch_size <= 0 or self.lr <= 0 or self.num_random < 0 or self.largest_epochs < 0:
            raise ValueError("epochs, batch_size and lr must be positive, num_random and largest_epochs non-negative")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be in [0, 1], got {self.teacher_weight}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {self.memory_format!r}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive, got {self.time_budget_s}")


@dataclass
class TrainResult:
    """What a training run did: epochs/steps completed, wall time, and the per-epoch log records."""

    epochs: int
    steps: int
    elapsed_s: float
    log: list[dict[str, Any]] = field(default_factory=list)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return device


def lr_at(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup_steps`` (at most half of ``total_steps``, so that a schedule fitted
    to a short budget still anneals), then cosine to 0 at ``total_steps``."""
    if total_steps >= 2:  # leave the cosine room
        warmup_steps = min(warmup_steps, total_steps // 2)
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * peak * (1.0 + math.cos(math.pi * progress))


def plan_epochs(done: int, cycle_s: list[float], elapsed_s: float, budget_s: float | None,
                max_epochs: int, reserve_s: float = 0.0) -> int:
    """Total epochs that fit the budget, from the median of the recent per-epoch wall times.

    The first epoch (CUDA/cuDNN warm-up) is left out of the estimate once a later one is known.
    """
    if budget_s is None or not cycle_s:
        return max_epochs
    recent = cycle_s[1:][-5:] or cycle_s
    per_epoch = max(statistics.median(recent), 1e-6)
    more = int((budget_s - elapsed_s - reserve_s) // per_epoch)
    return max(done, min(max_epochs, done + more))


def plan_from_steps(done: int, step_s: float, steps_per_epoch: int, epoch_start_s: float, budget_s: float,
                    max_epochs: int, reserve_s: float = 0.0) -> int:
    """Total epochs that fit the budget, estimated from the step time early in an epoch (``done`` epochs before it,
    which began ``epoch_start_s`` into the budget); at least that epoch, so its cosine can still end with it."""
    return max(done + 1, plan_epochs(done, [step_s * steps_per_epoch], epoch_start_s, budget_s, max_epochs,
                                     reserve_s))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: weights with ``weight_decay``; norm parameters and biases (ndim <= 1) without."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _quick_val(supernet: nn.Module, spec: Spec, val: tuple[torch.Tensor, torch.Tensor], calib: torch.Tensor | None,
               n_calib: int) -> dict[str, float]:
    """Top-1 of the largest and smallest sub-networks on ``val``; for a family with BN statistics, after
    recalibrating them on ``n_calib`` of ``calib``."""
    family = family_of(spec)
    scores = {}
    for name, arch in (("largest", family.largest(spec)), ("smallest", family.smallest(spec))):
        if family.bn_statistics:
            scores[f"val_top1_{name}"] = evaluate_arch(supernet, arch, val[0], val[1], calib, spec, n_calib)
        else:
            family.apply(supernet, arch)
            scores[f"val_top1_{name}"] = accuracy(supernet, val[0], val[1], arch.resolution, spec.mean, spec.std)
    return scores


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``config.optimizer``, SGD nesterov or AdamW, with :func:`param_groups` (no decay on norm parameters and
    biases)."""
    groups = param_groups(model, config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


def library_teacher(library: str | Path, level: str | None, num_classes: int,
                    device: torch.device | str = "cpu") -> Teacher:
    """A frozen level of a library (path or shipped model name; ``level`` None: its most accurate) as a
    :data:`Teacher`: logits of an augmented N x H x W x 3 uint8 batch at the level's own resolution and
    normalisation. ValueError when its classes are not ``num_classes``."""
    lib = SubnetLibrary.load(library_path(library))
    if lib.spec.num_classes != num_classes:
        raise ValueError(f"the teacher {library} has {lib.spec.num_classes} classes, the supernet {num_classes}")
    index = max(range(len(lib.levels)), key=lambda i: lib.levels[i].top1) if level is None else lib.index_of(level)
    supernet, _ = load_supernet(lib.checkpoint_path, lib.spec)
    subnet = extract_subnet(supernet, lib.levels[index], library_bn_stats(lib)[index],
                            library_heads(lib)[index]).to(device).eval()
    resolution, mean, std = lib.levels[index].arch.resolution, lib.spec.mean, lib.spec.std

    @torch.no_grad()
    def teach(images: torch.Tensor) -> torch.Tensor:
        return subnet(to_input(images, resolution, mean, std)).float()

    return teach


def sandwich_step(model: nn.Module, choices: Sequence[Any], activate: Callable[[Any], object], images: torch.Tensor,
                  target: torch.Tensor, config: TrainConfig, mean: Sequence[float], std: Sequence[float],
                  channels_last: bool, teacher: Teacher | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward/backward of one sandwich step (gradients accumulate; no optimizer step): the first choice on the
    labels, the others distilled from it; with a ``teacher``, every choice also (the first) or only (the others)
    from the teacher's soft targets. Returns the detached (cross-entropy, summed KL of the others) losses."""
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=images.device.type == "cuda")
    largest, *students = choices
    soft = None if teacher is None else F.log_softmax(teacher(images), dim=1)
    activate(largest)
    with autocast:
        logits = model(to_input(images, largest.resolution, mean, std, channels_last))
    ce = F.cross_entropy(logits.float(), target, label_smoothing=config.label_smoothing)
    if soft is None:
        ce.backward()
        soft = F.log_softmax(logits.detach().float(), dim=1)
    else:
        to_teacher = F.kl_div(F.log_softmax(logits.float(), dim=1), soft, reduction="batchmean", log_target=True)
        ((1 - config.teacher_weight) * ce + config.teacher_weight * to_teacher).backward()
    kd_total = torch.zeros((), device=images.device)
    for choice in students:
        activate(choice)
        with autocast:
            out = model(to_input(images, choice.resolution, mean, std, channels_last))
        kd = F.kl_div(F.log_softmax(out.float(), dim=1), soft, reduction="batchmean", log_target=True)
        kd.backward()
        kd_total += kd.detach()
    return ce.detach(), kd_total


def set_memory_format(model: nn.Module, channels_last: bool) -> None:
    """Store ``model``'s 4-D parameters channels-last (NHWC) or contiguous (NCHW)."""
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def faster_memory_format(step: Callable[[bool], object], model: nn.Module, device: torch.device, trials: int = 3,
                         log_fn: Callable[[str], object] = print) -> bool:
    """True when ``step(channels_last=True)`` is faster than with contiguous tensors (median of ``trials`` steps
    after one warm-up each). A format whose step fails is not chosen; gradients are cleared after."""
    seconds: dict[bool, float] = {}
    for channels_last in (False, True):
        set_memory_format(model, channels_last)
        try:
            samples = time_calls(lambda cl=channels_last: step(cl), 1, trials, sync=cuda_sync(device))
            seconds[channels_last] = float(np.median(samples))
        except RuntimeError as exc:
            log_fn(f"memory format probe: {_format_name(channels_last)} failed ({exc})")
        model.zero_grad(set_to_none=True)
    if not seconds:
        raise RuntimeError("a training step fails in both memory formats")
    chosen = min(seconds, key=seconds.__getitem__)
    log_fn("memory format probe: " + ", ".join(f"{_format_name(k)} {v * 1e3:.1f} ms/step" for k, v in seconds.items())
           + f" -> {_format_name(chosen)}")
    return chosen


def _format_name(channels_last: bool) -> str:
    return "channels_last" if channels_last else "contiguous"


def sandwich_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, choose: Callable[[random.Random], list[Any]],
                    activate: Callable[[Any], object], train_x: np.ndarray, train_y: np.ndarray, config: TrainConfig,
                    device: torch.device, mean: Sequence[float], std: Sequence[float], *,
                    progress: Progress | None = None,
                    validate: Callable[[Any], dict[str, float]] | None = None,
                    on_epoch_end: Callable[[Progress], object] | None = None,
                    log_path: Path | None = None, log_fn: Callable[[str], object] = print,
                    teacher: Teacher | None = None) -> TrainResult:
    """Sandwich-rule epochs (module docstring) on ``model`` in place, from ``progress`` (a resumed run) until
    ``config.epochs`` or the time budget ends.

    Per step ``choose(rng)`` gives the sub-networks to train (each has a ``resolution``; ``activate(choice)``
    selects one): the first on the labels with label smoothing, the rest distilled from its soft targets (KL), or all
    guided by ``teacher`` (:func:`sandwich_step`).
    ``validate(model)`` adds to the record every ``config.eval_every`` epochs and at the last one;
    ``on_epoch_end(progress)`` follows it (e.g. a checkpoint). One JSON record per epoch is appended to
    ``log_path`` (if given). Raises :class:`TrainingDiverged` on a non-finite loss.
    """
    steps_per_epoch = len(train_x) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_x)} training images are fewer than one batch of {config.batch_size}")
    progress = progress or Progress()
    torch.backends.cudnn.benchmark = False
    model.to(device).train()
    labels = torch.from_numpy(np.asarray(train_y, dtype=np.int64)).to(device)
    augment = DeviceAugmenter(train_x, device)
    gen = torch.Generator(device=device)
    if config.memory_format == "auto":
        gen.manual_seed(config.seed)
        probe_idx = torch.arange(config.batch_size, device=device)
        probe = (augment(probe_idx, gen), labels[probe_idx], choose(random.Random(config.seed)))
        channels_last = faster_memory_format(
            lambda cl: sandwich_step(model, probe[2], activate, probe[0], probe[1], config, mean, std, cl, teacher),
            model, device, log_fn=log_fn)
    else:
        channels_last = config.memory_format == "channels_last"
    set_memory_format(model, channels_last)
    warmup_steps = max(1, round(config.warmup_epochs * steps_per_epoch))
    fixed = config.schedule == "fixed"
    cycles, log, eval_reserve = progress.cycle_s, [], 0.0
    planned = plan_epochs(progress.epoch, cycles, progress.elapsed_s, config.time_budget_s, config.epochs)
    # Without a measured epoch, a fitted cosine is planned from steps [1, probe_to) of the first one (step 0 carries
    # the warm-up), so that an epoch long against the budget (a CPU run) does not end the run mid-cosine.
    probe_to = max(3, steps_per_epoch // 20)
    probe_pending = not fixed and config.time_budget_s is not None and not cycles and probe_to < steps_per_epoch
    sync = cuda_sync(device) or (lambda: None)
    start = time.perf_counter() - progress.elapsed_s
    while progress.epoch < planned:
        t0 = time.perf_counter()
        schedule_epochs = config.epochs if fixed else planned
        epoch_seed = config.seed * 100_003 + progress.epoch
        rng = random.Random(epoch_seed)
        gen.manual_seed(epoch_seed)
        perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(epoch_seed)).to(device)
        sums = torch.zeros(2, device=device)
        steps = tqdm(range(steps_per_epoch), desc=f"epoch {progress.epoch + 1}/{planned}", unit="step",
                     leave=False, disable=None)  # a bar on a terminal only; logs get the epoch line below
        for s in steps:
            if probe_pending and s in (1, probe_to):
                sync()
                if s == 1:
                    t_probe = time.perf_counter()
                else:
                    probe_pending = False
                    planned = schedule_epochs = plan_from_steps(
                        progress.epoch, (time.perf_counter() - t_probe) / (probe_to - 1), steps_per_epoch,
                        t0 - start, config.time_budget_s, config.epochs)
                    steps.set_description(f"epoch {progress.epoch + 1}/{planned}")
                    log_fn(f"fitted schedule: {planned} epoch(s) in the {config.time_budget_s:.0f} s budget, "
                           f"from steps 1-{probe_to - 1} of epoch {progress.epoch + 1}")
            lr = lr_at(progress.step, config.lr, warmup_steps, schedule_epochs * steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = perm[s * config.batch_size:(s + 1) * config.batch_size]
            images, target = augment(idx, gen), labels[idx]
            optimizer.zero_grad(set_to_none=True)
            ce, kd_total = sandwich_step(model, choose(rng), activate, images, target, config, mean, std,
                                         channels_last, teacher)
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            sums += torch.stack([ce, kd_total])
            progress.step += 1
        loss_ce, loss_kd = (sums / steps_per_epoch).tolist()
        train_s = time.perf_counter() - t0
        if not (math.isfinite(loss_ce) and math.isfinite(loss_kd)):
            raise TrainingDiverged(f"non-finite loss at epoch {progress.epoch} (ce={loss_ce}, kd={loss_kd})")
        progress.epoch += 1
        cycles.append(train_s)
        planned = plan_epochs(progress.epoch, cycles, time.perf_counter() - start, config.time_budget_s,
                              config.epochs, eval_reserve)
        if not fixed and progress.epoch >= schedule_epochs:
            planned = progress.epoch  # the cosine has ended: another epoch would restart it
        record: dict[str, Any] = {"epoch": progress.epoch, "step": progress.step, "planned_epochs": planned,
                                  "schedule_epochs": schedule_epochs,
                                  "lr": lr, "loss_ce_largest": loss_ce, "loss_kd_sum": loss_kd, "train_s": train_s}
        if validate is not None and (progress.epoch >= planned
                                     or (config.eval_every > 0 and progress.epoch % config.eval_every == 0)):
            t_eval = time.perf_counter()
            record.update(validate(model))
            model.train()
            record["eval_s"] = eval_reserve = time.perf_counter() - t_eval
        progress.elapsed_s = time.perf_counter() - start
        if on_epoch_end is not None:
            on_epoch_end(progress)
        cycles[-1] = time.perf_counter() - t0
        record.update(epoch_s=cycles[-1], elapsed_s=time.perf_counter() - start)
        log.append(record)
        if log_path is not None:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        log_fn(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    return TrainResult(progress.epoch, progress.step, time.perf_counter() - start, log)


def train_supernet(supernet: nn.Module, spec: Spec, train_x: np.ndarray, train_y: np.ndarray,
                   val_x: np.ndarray, val_y: np.ndarray, config: TrainConfig, work_dir: Path | str,
                   device: torch.device | str = "cpu", resume: bool = False, resume_from: Path | str | None = None,
                   log_fn: Callable[[str], object] = print, log_path: Path | str | None = None) -> TrainResult:
    """Train ``supernet`` (of ``spec``'s family) in place (see module docstring); its state is saved to ``work_dir``
    every epoch.

    Appends one JSON record per epoch to ``log_path`` (default ``work_dir/train_log.jsonl``). With ``resume`` the
    run continues from the state in ``work_dir`` (the budget counts the time already spent); with ``resume_from``
    it continues another call's state folder (e.g. the previous GPU call's output) with a budget of its own.
    Raises :class:`TrainingDiverged` on a non-finite loss.
    """
    device = torch.device(device)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = Path(log_path) if log_path is not None else work_dir / "train_log.jsonl"
    family = family_of(spec)
    supernet.to(device)
    optimizer = make_optimizer(supernet, config)
    progress = Progress()
    recipe = {**asdict(config), "train_images": len(train_x)}
    if resume_from is not None and config.schedule != "fixed":
        raise ValueError("--resume-from continues a fixed schedule (--schedule fixed); to start a new cycle from "
                         f"that state's weights, use --init {Path(resume_from) / 'supernet.pt'}")
    if resume or resume_from is not None:
        source = Path(resume_from) if resume_from is not None else work_dir
        progress = load_train_state(source, supernet, spec, optimizer, recipe)
        if resume_from is not None:  # a new call: its own budget and epoch-time estimate
            progress = Progress(progress.epoch, progress.step)
        if config.schedule == "fixed" and progress.epoch >= config.epochs:
            raise ValueError(f"the fixed schedule of {config.epochs} epochs in {source} is already complete")
        log_fn(f"resumed from {source} at epoch {progress.epoch}, step {progress.step}")
    elif log_path.exists():  # a new run
        log_path.unlink()

    val = (torch.from_numpy(np.ascontiguousarray(val_x)).to(device), torch.from_numpy(np.asarray(val_y)).to(device))
    calib = None
    if family.bn_statistics:
        calib_pick = np.random.default_rng(config.seed).permutation(len(train_x))[:config.n_calib]
        calib = torch.from_numpy(np.ascontiguousarray(train_x[calib_pick])).to(device)
    largest, smallest = family.largest(spec), family.smallest(spec)
    teacher = None if config.teacher is None else library_teacher(config.teacher, config.teacher_level,
                                                                  spec.num_classes, device)

    def choose(rng: random.Random) -> list[Arch]:
        if progress.epoch < config.largest_epochs:
            return [largest]
        return [largest, smallest, *(family.sample(spec, rng) for _ in range(config.num_random))]

    try:
        return sandwich_epochs(supernet, optimizer, choose, lambda arch: family.apply(supernet, arch), train_x, train_y,
                               config, device, spec.mean, spec.std, progress=progress,
                               on_epoch_end=lambda p: save_train_state(work_dir, supernet, spec, optimizer, p,
                                                                       recipe),
                               validate=lambda _: _quick_val(supernet, spec, val, calib, config.n_calib),
                               log_path=log_path, log_fn=log_fn, teacher=teacher)
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"{exc}; last good state in {work_dir}") from None


def initial_supernet(spec: Spec, init: Path | str | None = None) -> nn.Module:
    """A fresh supernet of ``spec``'s family, or one holding a checkpoint's weights (to continue training
    elsewhere)."""
    if init is None:
        return family_of(spec).build(spec)
    return load_supernet(init, spec)[0].train()
