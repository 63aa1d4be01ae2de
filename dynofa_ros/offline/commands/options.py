"""Command-line options the ``dynofa`` sub-commands share: which supernet, which data, level building and timing;
and how they are loaded.

Supernet: ``--checkpoint`` and, for a checkpoint without a spec inside (the published ``ofa`` layout, a bare
state dict or ``{"state_dict": ...}``) or a fresh supernet, ``--net`` (a published name, ``cifar10`` or an elastic
ViT preset such as ``vit-cifar10-cpu``) with ``--net-*`` overrides of its fields. Our own checkpoints carry their
spec; a spec given for one must equal it.

Data: ``--data`` (any form :mod:`dynofa_ros.datasets.image_dataset` reads) and ``--cache-dir``; images are
stored at ``--image-size``, else their own size when they all share one, else the supernet's largest resolution.

Levels: ``--heads/--no-heads`` and the ``--tune-bn-*`` BN tuning (``build-library``, ``calibrate``; ``evaluate`` with
``--fit-heads``), for a family with batch norm only; the images levels are built on, and the CPU timing options
(``build-library``, ``measure``; ``--backends`` also ``profile``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dynofa_ros.datasets.image_dataset import CACHE_ENV, DATA_ENV, FORMS, ImageDataset, default_cache_dir
from dynofa_ros.offline.bn_tuning import BnTuneConfig
from dynofa_ros.offline.data import (
    BATCH_RESOLUTION,
    FIT_BUDGET_BYTES,
    ImageRows,
    Split,
    fit_limit,
    scaled_batch,
    stratified_split,
    subset,
)
from dynofa_ros.offline.evaluate import check_level_fit
from dynofa_ros.offline.library_build import LevelImages
from dynofa_ros.offline.profile import CPU_PROFILES
from dynofa_ros.supernet.family import NAMED_NETS, Spec, family_of, named_spec
from dynofa_ros.supernet.serving import ONNXRUNTIME, TORCH, onnxruntime_installed
from dynofa_ros.supernet.spec import SupernetSpec, numbered_classes

if TYPE_CHECKING:
    from torch import nn

VAL_FRACTION = 0.1  # of the training images, when --val-size is not given (CIFAR-10: 5 000 of 50 000)

# --net-<field> overrides: option suffix -> (spec field, type, nargs)
_SPEC_FIELDS: dict[str, tuple[str, type, str | int | None, str]] = {
    "width": ("width_mult", float, None, "W"),
    "ks": ("ks_list", int, "+", "K"),
    "expand": ("expand_list", int, "+", "E"),
    "depth": ("depth_list", int, "+", "D"),
    "classes": ("num_classes", int, None, "N"),
    "resolutions": ("resolutions", int, "+", "PX"),
    "mean": ("mean", float, 3, "M"),
    "std": ("std", float, 3, "S"),
}


def add_supernet_arguments(parser: argparse.ArgumentParser, checkpoint: str = "required") -> None:
    """``--checkpoint`` (``required``, ``optional`` or ``none``: the sub-command takes no checkpoint), ``--net``
    and the ``--net-*`` spec fields."""
    group = parser.add_argument_group("supernet")
    if checkpoint != "none":
        group.add_argument("--checkpoint", type=Path, required=checkpoint == "required",
                           help="supernet weights: our checkpoint (spec inside) or a published ofa one "
                                "({'state_dict': ...} or a bare state dict; needs --net)")
    ofa = [name for name, spec in NAMED_NETS.items() if isinstance(spec, SupernetSpec)]
    vit = [name for name in NAMED_NETS if name not in ofa]
    group.add_argument("--net", metavar="NAME", help=f"spec of a checkpoint without one, or of a fresh supernet: "
                       f"{', '.join(ofa)}; elastic ViT: {', '.join(vit)}")
    for suffix, (name, kind, nargs, metavar) in _SPEC_FIELDS.items():
        group.add_argument(f"--net-{suffix}", type=kind, nargs=nargs, dest=f"net_{suffix}", metavar=metavar,
                           help=f"override the spec's {name} (default: --net's, else cifar10's)")


def requested_spec(args: argparse.Namespace) -> Spec | None:
    """The spec ``--net``/``--net-*`` describe, or None when none of them is given (the checkpoint's own);
    ValueError for an unknown net or an override its family does not have."""
    overrides: dict[str, Any] = {}
    for suffix, (name, _, nargs, _) in _SPEC_FIELDS.items():
        value = getattr(args, f"net_{suffix}", None)
        if value is not None:
            overrides[name] = tuple(value) if nargs else value
    if args.net is None and not overrides:
        return None
    spec = named_spec(args.net or "cifar10")
    foreign = [f"--net-{suffix}" for suffix, (name, *_) in _SPEC_FIELDS.items()
               if name in overrides and name not in spec.__dataclass_fields__]
    if foreign:
        raise ValueError(f"{', '.join(foreign)}: not a field of the {spec.family} family's spec ({args.net})")
    classes = overrides.get("num_classes", spec.num_classes)
    if classes != spec.num_classes:
        overrides["class_names"] = numbered_classes(classes)
    return replace(spec, **overrides)


def spec_for(args: argparse.Namespace) -> Spec:
    """``requested_spec``, else the default (CIFAR-10) spec: for sub-commands that build a supernet afresh."""
    return requested_spec(args) or SupernetSpec()


def load_checkpoint(args: argparse.Namespace, path: Path | None = None,
                    spec: Spec | None = None) -> tuple[nn.Module, Spec]:
    """The supernet of ``path`` (default ``args.checkpoint``) with the spec the options request, else ``spec``."""
    from dynofa_ros.supernet.checkpoint import load_supernet

    return load_supernet(path or args.checkpoint, requested_spec(args) or spec)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--cache-dir`` and ``--image-size``: where the data is, where its decoded cache goes, and the
    size it is stored at."""
    group = parser.add_argument_group("data")
    group.add_argument("--data", type=Path, default=None, help=f"the dataset (default: ${DATA_ENV}): {FORMS}")
    group.add_argument("--cache-dir", type=Path, default=None,
                       help=f"decoded-data cache (default: {default_cache_dir()}; ${CACHE_ENV} overrides)")
    group.add_argument("--image-size", type=int, default=None, help="store images at this square size "
                       "(default: their own size when they all share one, else the supernet's largest resolution)")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """:func:`add_source_arguments` and the held-out validation split (the same as in training)."""
    add_source_arguments(parser)
    parser.add_argument("--val-size", type=int, default=None,
                        help=f"validation images held out of the training split, as in training (default: "
                             f"{VAL_FRACTION * 100:.0f} %% of it)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of that split, as in training "
                        "(default: %(default)s)")


def load_data(args: argparse.Namespace, spec: Spec | None = None, progress: bool = True) -> ImageDataset:
    """The dataset the options name, stored at ``--image-size`` or as the module docstring says."""
    from dynofa_ros.datasets.image_dataset import load_dataset

    fallback = max(spec.resolutions) if spec is not None else None
    return load_dataset(args.data, args.cache_dir, args.image_size, fallback, progress)


def val_size(args: argparse.Namespace, n_train: int) -> int:
    """``--val-size``, else :data:`VAL_FRACTION` of the ``n_train`` training images (at least one)."""
    return args.val_size if args.val_size is not None else max(1, round(VAL_FRACTION * n_train))


def split_of(args: argparse.Namespace, data: ImageDataset) -> Split:
    """The held-out validation split ``--val-size`` and ``--split-seed`` describe."""
    return stratified_split(data.train_y, val_size(args, len(data.train_y)), args.split_seed)


def add_tune_arguments(parser: argparse.ArgumentParser, heads_flag: str) -> None:
    """``--tune-bn-epochs`` and ``--tune-bn-lr``; the tuning is on by default when ``heads_flag`` is."""
    default = BnTuneConfig()
    parser.add_argument("--tune-bn-epochs", type=float, default=None, metavar="E",
                        help="train each level's own BN scale and shift with its classifier for E epochs of the "
                        f"training split and fold them into its BN statistics (0: off; needs {heads_flag}; ~1-3 min "
                        "per epoch for a small level, ~6 for the largest, on 2 cores) (default: "
                        f"{default.epochs:g} with {heads_flag}, else 0)")
    parser.add_argument("--tune-bn-lr", type=float, default=default.lr,
                        help="peak Adam learning rate of the BN tuning (default: %(default)s)")
    parser.add_argument("--tune-bn-batch", type=int, default=None,
                        help=f"batch of the BN tuning (default: {default.batch_size} up to 64 px, smaller in "
                        "proportion to the pixels above, to bound memory)")


def tune_config(args: argparse.Namespace, heads: bool, heads_flag: str, resolution: int = BATCH_RESOLUTION
                ) -> BnTuneConfig | None:
    """The BN tuning ``--tune-bn-epochs``/``--tune-bn-lr``/``--tune-bn-batch`` ask for, given whether heads are
    fitted and the largest input ``resolution`` (the default batch shrinks above 64 px); None when off.
    ValueError on bad values or tuning without heads."""
    epochs = args.tune_bn_epochs
    if epochs is None:
        epochs = BnTuneConfig().epochs if heads else 0
    if epochs == 0:
        return None
    if not heads:
        raise ValueError(f"--tune-bn-epochs trains each level's classifier with its BN: it needs {heads_flag} "
                         "(or --tune-bn-epochs 0)")
    batch = args.tune_bn_batch or scaled_batch(BnTuneConfig().batch_size, resolution)
    return BnTuneConfig(epochs=epochs, lr=args.tune_bn_lr, batch_size=batch)


def add_heads_argument(parser: argparse.ArgumentParser) -> None:
    """``--heads/--no-heads`` and the BN tuning options, shared by ``build-library`` and ``calibrate``."""
    parser.add_argument("--heads", action=argparse.BooleanOptionalAction, default=None,
                        help="fit each level's classifier head on the training split (heads.pt; ~1-4 min per level "
                        "on 2 cores); --no-heads: the levels share the supernet's classifier (default: on for a "
                        "supernet family with batch norm, ofa_mbv3; elastic_vit levels share it)")
    parser.add_argument("--max-fit-images", type=int, default=None, metavar="N",
                        help="fit the levels (BN statistics, heads, BN tuning) on a seeded random N of the training "
                        f"split (default: all of it, up to {FIT_BUDGET_BYTES >> 30} GiB of images: the heads and the "
                        "BN tuning hold them in memory)")
    add_tune_arguments(parser, "--heads")


def level_fit(args: argparse.Namespace, spec: Spec) -> BnTuneConfig | None:
    """Set ``args.heads`` (``--heads/--no-heads``; by default on where the family has batch norm) and return the BN
    tuning :func:`tune_config` asks for; ValueError, in one line, when heads or BN tuning are asked of a family
    without batch norm."""
    if args.heads is None:
        args.heads = family_of(spec).bn_statistics
    check_level_fit(spec, args.heads or bool(args.tune_bn_epochs))
    return tune_config(args, args.heads, "--heads", max(spec.resolutions))


def level_images(args: argparse.Namespace, data: ImageDataset, split: Split) -> LevelImages:
    """The images of ``build-library`` and ``calibrate``: the training part of ``split`` (``--max-fit-images`` of
    it, labelled with ``--heads``), ``--n-calib`` of those for the BN statistics, and the test images
    (``--max-test-images`` of them); read from the dataset a batch at a time."""
    fit = subset(split.train, args.max_fit_images or fit_limit(data.train_x.shape[1:]), args.split_seed)
    test_idx = subset(np.arange(len(data.test_y)), args.max_test_images, args.split_seed)
    return LevelImages(ImageRows(data.train_x, fit), data.train_y[fit] if args.heads else None,
                       min(args.n_calib, len(fit)), ImageRows(data.test_x, test_idx), data.test_y[test_idx])


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """CPU profiles and timing options shared by ``build-library`` and ``measure``."""
    parser.add_argument("--profiles", nargs="+", default=list(CPU_PROFILES), metavar="PROFILE",
                        help="CPU profiles to measure each level on (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up runs per measurement (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=100, help="timed runs per measurement (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved passes over the levels the repeats "
                        "are split into (default: %(default)s)")
    add_backends_argument(parser, "to time each level with", "the perception node serves with one, the manager "
                          "plans with its records")


def add_backends_argument(parser: argparse.ArgumentParser, what: str, why: str) -> None:
    """``--backends``: the CPU serving backends to do ``what`` with, because ``why`` (both in the help); default
    torch, and onnxruntime when it is installed."""
    default = [TORCH, ONNXRUNTIME] if onnxruntime_installed() else [TORCH]
    parser.add_argument("--backends", nargs="+", default=default, choices=[TORCH, ONNXRUNTIME], metavar="BACKEND",
                        help=f"serving backends {what} ({TORCH}, {ONNXRUNTIME}); {why} (default: torch, and "
                        "onnxruntime when it is installed)")
