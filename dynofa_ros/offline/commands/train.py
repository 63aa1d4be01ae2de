"""``dynofa train``: train the supernet (sandwich rule, in-place distillation) on a dataset's training split.

:func:`add_training_arguments` and :func:`config_from_args` are shared with the GPU training jobs in
``experiments/``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

from dynofa_ros.offline.commands.options import (
    VAL_FRACTION,
    add_source_arguments,
    add_supernet_arguments,
    load_checkpoint,
    load_data,
    spec_for,
    val_size,
)
from dynofa_ros.offline.data import stratified_split, subset
from dynofa_ros.offline.train import (
    MEMORY_FORMATS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    initial_supernet,
    resolve_device,
    train_supernet,
)
from dynofa_ros.offline.train_state import MOMENTUM, PROGRESS, WEIGHTS
from dynofa_ros.supernet.family import FAMILIES, family_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``dynofa train`` options."""
    add_training_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("runs/train"), help="supernet.pt + training state and log "
                        "(default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run whose state is in <out>")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Data and hyper-parameter options (shared by ``dynofa train`` and the GPU job)."""
    d = TrainConfig()
    add_source_arguments(parser)
    add_supernet_arguments(parser, checkpoint="none")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs (budget may stop earlier)")
    parser.add_argument("--time-budget", type=float, default=None, help="training wall-clock budget, seconds; "
                        "the cosine schedule ends when it ends")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    defaults = ", ".join(f"{f.name}: {f.optimizer}" for f in FAMILIES.values())
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                        help=f"sgd (nesterov) or adamw (default: the supernet family's; {defaults})")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the optimizer's; "
                        + _per_optimizer("lr") + ")")
    parser.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    parser.add_argument("--weight-decay", type=float, default=None, help="(default: the optimizer's; "
                        + _per_optimizer("weight_decay") + ")")
    parser.add_argument("--num-random", type=int, default=d.num_random, help="random subnets per step")
    parser.add_argument("--largest-epochs", type=float, default=d.largest_epochs, metavar="E",
                        help="train the largest subnet alone for the first E epochs, then the sandwich rule "
                        "(progressive shrinking's first phase)")
    parser.add_argument("--teacher", default=None, metavar="LIBRARY",
                        help="distil from a level of this library (a library.json path or a shipped model name, "
                        "e.g. mbv3): the largest subnet learns from labels and teacher, the others from the teacher")
    parser.add_argument("--teacher-level", default=None, metavar="LEVEL",
                        help="the teacher's level by name, e.g. L3 (default: its most accurate)")
    parser.add_argument("--teacher-weight", type=float, default=d.teacher_weight,
                        help="the teacher's share of the largest subnet's loss (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=d.eval_every, help="quick val every N epochs (0: end)")
    parser.add_argument("--n-calib", type=int, default=d.n_calib, help="BN calibration images")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--memory-format", choices=MEMORY_FORMATS, default=d.memory_format,
                        help="tensor layout while training; auto times a few steps in each and keeps the faster "
                        "(default: %(default)s)")
    parser.add_argument("--val-size", type=int, default=None,
                        help=f"held-out split of the training set (default: {VAL_FRACTION * 100:.0f} %% of it)")
    parser.add_argument("--max-train-images", type=int, default=None, help="train on a subset (quick runs)")
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint: ours or a published "
                        "ofa one with --net (fresh optimizer and schedule)")
    parser.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help="fit: the cosine ends with "
                        "--time-budget; fixed: it spans --epochs, the budget only ends this call (continue with "
                        "--resume-from) (default: %(default)s)")
    parser.add_argument("--resume-from", type=Path, default=None, metavar="DIR",
                        help="continue the training state another call left in DIR (supernet.pt, momentum.pt, "
                        "progress.json), e.g. the previous GPU job's output")


def _per_optimizer(field: str) -> str:
    return ", ".join(f"{name} {values[field]:g}" for name, values in OPTIMIZER_DEFAULTS.items())


def config_from_args(args: argparse.Namespace, optimizer: str = TrainConfig.optimizer) -> TrainConfig:
    """The :class:`TrainConfig` described by parsed :func:`add_training_arguments` options, with ``optimizer``
    unless ``--optimizer`` names one (ValueError for options that exclude each other)."""
    if args.init is not None and args.resume_from is not None:
        raise ValueError("--init starts a new run from a checkpoint, --resume-from continues one: pass only one")
    return TrainConfig(epochs=args.epochs, time_budget_s=args.time_budget, batch_size=args.batch_size,
                       lr=args.lr, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
                       num_random=args.num_random, largest_epochs=args.largest_epochs,
                       eval_every=args.eval_every, n_calib=args.n_calib,
                       seed=args.seed, memory_format=args.memory_format, schedule=args.schedule,
                       optimizer=args.optimizer or optimizer, teacher=args.teacher,
                       teacher_level=args.teacher_level, teacher_weight=args.teacher_weight)


def run(args: argparse.Namespace) -> int:
    """``dynofa train``: train on the dataset's training split; ``<out>/supernet.pt`` is the trained checkpoint."""
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    if args.init is None:
        spec = spec_for(args)
        supernet = initial_supernet(spec)
    else:  # ours (spec inside) or a published checkpoint with --net
        supernet, spec = load_checkpoint(args, args.init)
        supernet.train()
    config = config_from_args(args, family_of(spec).optimizer)
    data = load_data(args, spec)
    if len(data.class_names) != spec.num_classes:
        raise ValueError(f"the dataset has {len(data.class_names)} classes, the supernet {spec.num_classes}: pass "
                         f"--net-classes {len(data.class_names)} (a fresh supernet) or `dynofa adapt` the checkpoint")
    spec = replace(spec, class_names=data.class_names)
    split = stratified_split(data.train_y, val_size(args, len(data.train_y)), config.seed)
    train_idx = subset(split.train, args.max_train_images, config.seed)
    train_supernet(supernet, spec, data.train_x[train_idx], data.train_y[train_idx], data.train_x[split.val],
                   data.train_y[split.val], config, args.out, device, resume=args.resume, resume_from=args.resume_from)
    print(f"wrote {Path(args.out) / WEIGHTS} (the checkpoint; with {MOMENTUM} and {PROGRESS} the state that "
          "--resume / --resume-from continue)")
    return 0


def main() -> int:
    """``dynofa train`` on its own: ``python -m dynofa_ros.offline.commands.train``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
