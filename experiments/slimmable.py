"""Width-only dynamic baseline: a universally slimmable torchvision MobileNetV3 (US-Nets style).

One full-width network owns every weight. A narrower network is torchvision's own
``mobilenet_v3_*(width_mult=w)``: every tensor of it has the shape of a leading slice of the
full-width tensor (channels are ``_make_divisible(c * w, 8)``), so a width-``w`` forward is a
:func:`torch.func.functional_call` of a parameter-free (meta-device) width-``w`` skeleton on sliced
views of the shared weights: conv, linear and BN weights are sliced, gradients flow into the shared
tensors. Width is continuous in ``[width_min, width_max]`` (the widths a layer can take are those
``_make_divisible`` yields); with several ``resolutions`` the network is also trained at several input
sizes (MutualNet style).

Training (:func:`train_elastic`) runs the supernet's training loop (``dynofa_ros/offline/train.py``'s
:func:`~dynofa_ros.offline.train.sandwich_epochs`) with widths in place of sub-networks: sandwich
rule (largest on labels with label smoothing; smallest and ``num_random`` random widths on the
largest's soft targets, in-place distillation), SGD nesterov, warm-up + cosine to the end of the
time budget, bf16 autocast on CUDA. A static reference is the same record with ``width_min ==
width_max`` and one resolution: plain cross-entropy training, nothing else changes.

BN statistics are recalibrated after training per (width, resolution), as US-Nets do (post-hoc BN
calibration): :func:`calibrate_level` extracts the static width-``w`` network and sets its running
statistics from training images with ``ofa``'s ``set_running_statistics`` (as our library's levels).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics
from torch import Tensor, nn
from torch.func import functional_call

from dynofa_ros.offline.calibrate import CALIB_SEED, calibration_batches
from dynofa_ros.offline.evaluate import accuracy
from dynofa_ros.offline.train import TrainConfig, TrainResult, make_optimizer, sandwich_epochs
from dynofa_ros.supernet.spec import CIFAR10_MEAN, CIFAR10_STD

LAYOUTS = ("mobilenet_v3_large", "mobilenet_v3_small")
CHECKPOINT_FORMAT = "dynofa-baseline/1"
US_NETS_MIN_WIDTH = 0.35


@dataclass(frozen=True)
class BaselineConfig:
    """A torchvision MobileNetV3 layout, its width range (absolute ``width_mult``) and input sizes.

    ``width_min == width_max`` with one resolution is a static network; otherwise a width-only
    (and, with several resolutions, width x resolution) dynamic network.
    """

    layout: str = "mobilenet_v3_large"
    width_min: float = US_NETS_MIN_WIDTH
    width_max: float = 1.0
    resolutions: tuple[int, ...] = (64,)
    num_classes: int = 10
    dropout: float = 0.1
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; choose one of {LAYOUTS}")
        if not 0 < self.width_min <= self.width_max:
            raise ValueError(f"need 0 < width_min <= width_max, got {self.width_min}, {self.width_max}")
        if not self.resolutions or any(int(r) < 8 for r in self.resolutions):
            raise ValueError(f"resolutions must be a non-empty list of sizes >= 8, got {self.resolutions}")

    @property
    def static(self) -> bool:
        return self.width_min == self.width_max and len(self.resolutions) == 1

    def check_width(self, width: float) -> float:
        if not self.width_min - 1e-9 <= width <= self.width_max + 1e-9:
            raise ValueError(f"width {width} outside the trained range [{self.width_min}, {self.width_max}]")
        return float(width)

    def build(self, width: float) -> nn.Module:
        """torchvision's ``<layout>(width_mult=width)`` for this config (random init, nothing downloaded)."""
        builder = getattr(torchvision.models, self.layout)
        return builder(weights=None, num_classes=self.num_classes, width_mult=self.check_width(width),
                       dropout=self.dropout)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown baseline config fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def leading_slice(tensor: Tensor, shape: Sequence[int]) -> Tensor:
    """The view ``tensor[:shape[0], :shape[1], ...]`` (ValueError if ``shape`` exceeds the tensor's)."""
    if len(shape) != tensor.dim() or any(s > t for s, t in zip(shape, tensor.shape, strict=True)):
        raise ValueError(f"cannot slice a {tuple(tensor.shape)} tensor to {tuple(shape)}")
    return tensor[tuple(slice(0, s) for s in shape)]


class SlimmableNet(nn.Module):
    """A network runnable at any width of its config's range; ``net`` holds the full-width weights."""

    def __init__(self, config: BaselineConfig) -> None:
        super().__init__()
        self.config = config
        self.net = config.build(config.width_max)
        self.width = config.width_max
        self._skeletons: dict[float, tuple[nn.Module, dict[str, torch.Size]]] = {}

    def set_width(self, width: float) -> None:
        """Run the next forward passes at ``width`` (absolute width multiplier)."""
        self.width = self.config.check_width(width)

    def _skeleton(self, width: float) -> tuple[nn.Module, dict[str, torch.Size]]:
        key = round(width, 6)
        if key not in self._skeletons:
            with torch.device("meta"):
                skeleton = self.config.build(width)
            shapes = {k: v.shape for k, v in skeleton.state_dict().items()}
            if shapes.keys() != self.net.state_dict().keys():
                raise ValueError(f"{self.config.layout} at width {width} has other layers than at full width")
            self._skeletons[key] = (skeleton, shapes)
        return self._skeletons[key]

    def sliced_state(self, width: float) -> dict[str, Tensor]:
        """Views of every parameter and buffer cut to the width-``width`` network's shapes."""
        _, shapes = self._skeleton(self.config.check_width(width))
        tensors = dict(self.net.named_parameters()) | dict(self.net.named_buffers())
        return {k: leading_slice(tensors[k], shape) for k, shape in shapes.items()}

    def forward(self, x: Tensor) -> Tensor:
        if self.width == self.config.width_max:
            return self.net(x)
        skeleton, _ = self._skeleton(self.width)
        skeleton.train(self.training)
        return functional_call(skeleton, self.sliced_state(self.width), (x,), strict=True)

    def extract(self, width: float) -> nn.Module:
        """A standalone torchvision network of ``width`` holding copies of the sliced weights and BN buffers."""
        net = self.config.build(width)
        net.load_state_dict({k: v.detach().clone() for k, v in self.sliced_state(width).items()})
        device = next(self.net.parameters()).device
        return net.to(device).train(self.training)


# ------------------------------------------------------------------------------------ BN and accuracy


def calibrate_level(model: SlimmableNet, width: float, resolution: int, images_uint8: np.ndarray | Tensor,
                    n: int = 2000, batch: int = 500, seed: int = CALIB_SEED) -> nn.Module:
    """The eval-mode static network of ``width`` with BN statistics recalibrated on ``n`` images at
    ``resolution`` (post-hoc BN calibration per width, as US-Nets; ``ofa``'s estimator)."""
    net = model.extract(width).eval()
    device = next(net.parameters()).device
    cfg = model.config
    set_running_statistics(net, calibration_batches(images_uint8, resolution, cfg.mean, cfg.std, device, n, batch,
                                                    seed))
    return net


def level_grid(config: BaselineConfig, widths: Sequence[float] | None = None) -> list[tuple[float, int]]:
    """(width, resolution) operating points: the given widths (default: 7 evenly spread over the trained range,
    rounded to 0.01, or the one width of a static network) at every trained resolution."""
    if widths is None:
        spread = np.linspace(config.width_min, config.width_max, 7).round(2)
        widths = [config.width_max] if config.static else spread
    return [(round(float(config.check_width(w)), 4), r) for w in widths for r in config.resolutions]


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Choice:
    """One operating point during training: width multiplier and input resolution."""

    width: float
    resolution: int


def sandwich_choices(config: BaselineConfig, num_random: int, rng: random.Random) -> list[Choice]:
    """Largest, smallest and ``num_random`` random (width, resolution) choices of one step; only the
    largest for a static network. Random widths are drawn uniformly on a 0.01 grid."""
    largest = Choice(config.width_max, max(config.resolutions))
    if config.static:
        return [largest]
    smallest = Choice(config.width_min, min(config.resolutions))
    lo, hi = math.ceil(round(config.width_min * 100, 6)), math.floor(round(config.width_max * 100, 6))
    rand = [Choice(rng.randint(lo, hi) / 100, rng.choice(config.resolutions)) for _ in range(num_random)]
    return [largest, smallest, *rand]


def train_elastic(model: SlimmableNet, train_x: np.ndarray, train_y: np.ndarray, config: TrainConfig,
                  device: torch.device | str = "cpu", log_fn: Callable[[str], object] = print,
                  log_path: Path | str | None = None,
                  validate: Callable[[SlimmableNet], dict[str, float]] | None = None) -> TrainResult:
    """Train ``model`` in place with the supernet's recipe (see the module docstring) within
    ``config.time_budget_s``; ``validate(model)`` runs every ``config.eval_every`` epochs and at the end.

    One JSON record per epoch goes to ``log_path`` (if given). Raises :class:`TrainingDiverged` on a
    non-finite loss.
    """
    cfg = model.config
    result = sandwich_epochs(model, make_optimizer(model, config),
                             lambda rng: sandwich_choices(cfg, config.num_random, rng),
                             lambda choice: model.set_width(choice.width), train_x, train_y, config,
                             torch.device(device), cfg.mean, cfg.std, validate=validate,
                             log_path=Path(log_path) if log_path is not None else None, log_fn=log_fn)
    model.set_width(cfg.width_max)
    return result


def end_points_validator(val_x: np.ndarray | Tensor, val_y: np.ndarray | Tensor, calib_x: np.ndarray | Tensor,
                         n_calib: int) -> Callable[[SlimmableNet], dict[str, float]]:
    """A ``validate`` callback: BN-recalibrated top-1 on the validation split of the largest and smallest
    (width, resolution) of the model (the one network of a static config)."""
    def validate(model: SlimmableNet) -> dict[str, float]:
        cfg = model.config
        ends = {"largest": (cfg.width_max, max(cfg.resolutions))}
        if not cfg.static:
            ends["smallest"] = (cfg.width_min, min(cfg.resolutions))
        return {f"val_top1_{name}": accuracy(calibrate_level(model, w, r, calib_x, n_calib), val_x, val_y, r,
                                             cfg.mean, cfg.std)
                for name, (w, r) in ends.items()}
    return validate


# ----------------------------------------------------------------------------------------- checkpoints


def save_baseline(path: Path | str, model: SlimmableNet, name: str, train: dict[str, Any] | None = None) -> Path:
    """Write ``{"format", "name", "config", "train", "state_dict" (fp16 floats)}`` to ``path``."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
             for k, v in model.net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "name": name, "config": model.config.to_dict(),
                "train": json.dumps(train or {}), "state_dict": state}, path)
    return path


@dataclass
class Baseline:
    """A loaded baseline checkpoint: its name, network and training record."""

    name: str
    model: SlimmableNet
    train: dict[str, Any]
    path: Path


def load_baseline(path: Path | str) -> Baseline:
    """Read a :func:`save_baseline` checkpoint (``weights_only``); FileNotFoundError / ValueError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baseline checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"cannot read baseline checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a baseline checkpoint (format {CHECKPOINT_FORMAT!r})")
    model = SlimmableNet(BaselineConfig.from_dict(data["config"]))
    try:
        model.net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match its config: {exc}") from exc
    return Baseline(str(data["name"]), model.eval(), json.loads(data["train"]), path)
