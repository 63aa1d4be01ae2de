"""Train one level's own BN scale and shift (and classifier), then fold them into its BN statistics.

Every level shares the supernet's convolutions and, until now, its BN scale (gamma) and shift (beta); only
its statistics and classifier head were its own. Slimmable networks give each width "private" BN parameters;
here each level gets them offline: with the convolutions frozen and the level's calibrated statistics fixed
(eval mode, so training sees exactly what the runtime computes), a per-channel log-scale ``s`` and shift ``b``
are trained on the training split (crop + flip, cross-entropy, Adam, cosine), the level's effective BN being

    y = gamma * exp(s) * (x - mean) / sqrt(var + eps) + beta + b.

That is again a batch norm with the *shared* gamma and beta and other constants (``fold_affine``):

    sigma' = sqrt(var + eps) * exp(-s),  var' = sigma'^2 - eps,  mean' = mean - b * sigma' / gamma,

so the library's per-level ``bn_stats.pt`` holds them and nothing changes at run time: the same file, the
same copy at a switch. ``s`` is capped so that ``var'`` stays >= 0, and ``b`` is fixed at 0 where gamma is 0
(a constant channel): the fold is exact for everything the training can reach.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm import tqdm

from dynofa_ros.offline.data import DeviceAugmenter, to_input
from dynofa_ros.offline.heads import fit_head
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.bn import BnStats, apply_bn_stats
from dynofa_ros.supernet.heads import LevelHead, final_linear, using_head
from dynofa_ros.supernet.spec import SupernetSpec

GAMMA_TOL = 1e-8  # |gamma| at or below this: a constant channel, whose shift cannot be folded


@dataclass(frozen=True)
class BnTuneConfig:
    """How a level's BN scale/shift and classifier are trained (chosen on the validation split, docs/RESULTS.md)."""

    epochs: float = 3.0
    lr: float = 1e-2
    batch_size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and self.lr > 0 and self.batch_size > 0) or not math.isfinite(self.epochs * self.lr):
            raise ValueError(f"BN tuning needs positive epochs, lr and batch size, got {self}")

    def note(self, n_images: int, dataset: str = "cifar10") -> str:
        """The library's record of this tuning (:meth:`from_note` reads it back)."""
        return (f"each level's BN scale and shift trained with its classifier ({self.epochs:g} epochs of {n_images} "
                f"{dataset}-train images, crop + flip, Adam lr {self.lr:g} cosine, batch {self.batch_size}, seed "
                f"{self.seed}) and folded into its statistics")

    @classmethod
    def from_note(cls, text: str) -> BnTuneConfig | None:
        """The tuning a library's ``calibration`` record names, None when it names none."""
        found = _NOTE.search(text)
        if found is None:
            return None
        epochs, lr, batch, seed = found.groups()
        return cls(float(epochs), float(lr), int(batch), int(seed))


_NOTE = re.compile(r"\(([-+.\de]+) epochs of \d+ \S+-train images, crop \+ flip, Adam lr ([-+.\de]+) cosine, "
                   r"batch (\d+), seed (\d+)\) and folded into its statistics")


class _Scale(nn.Module):
    """gamma -> gamma * exp(min(s, cap)): the cap keeps the folded variance >= 0."""

    def __init__(self, cap: Tensor) -> None:
        super().__init__()
        self.cap = cap
        self.s = nn.Parameter(torch.zeros_like(cap))

    def forward(self, gamma: Tensor) -> Tensor:
        return gamma * torch.exp(torch.minimum(self.s, self.cap))


class _Shift(nn.Module):
    """beta -> beta + b, with b held at 0 where gamma is 0."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.mask = mask
        self.b = nn.Parameter(torch.zeros_like(mask))

    def forward(self, beta: Tensor) -> Tensor:
        return beta + self.b * self.mask


def scale_cap(var: Tensor, eps: float) -> Tensor:
    """The largest log-scale per channel whose folded variance is still >= 0: 0.5 * ln((var + eps) / eps)."""
    return 0.5 * torch.log((var.clamp_min(0) + eps) / eps)


def fold_affine(mean: Tensor, var: Tensor, eps: float, gamma: Tensor, log_scale: Tensor, shift: Tensor
                ) -> tuple[Tensor, Tensor]:
    """(mean', var') with which a BN of scale ``gamma`` computes what ``gamma * exp(log_scale)`` and a shift of
    ``shift`` more compute with (mean, var); ValueError where that is impossible (see the module docstring)."""
    if bool((log_scale > scale_cap(var, eps) + 1e-6).any()):
        raise ValueError("log-scale above its cap: the folded variance would be negative")
    if bool(((gamma.abs() <= GAMMA_TOL) & (shift != 0)).any()):
        raise ValueError("a shift on a channel with gamma 0 cannot be folded")
    sigma = torch.sqrt(var + eps) * torch.exp(-log_scale)
    safe_gamma = torch.where(gamma.abs() > GAMMA_TOL, gamma, torch.ones_like(gamma))
    new_mean = mean - shift * sigma / safe_gamma
    return new_mean, (sigma * sigma - eps).clamp_min(0)


def _bn_layers(net: nn.Module, stats: BnStats) -> dict[str, nn.BatchNorm2d]:
    modules = dict(net.named_modules())
    return {name: modules[name] for name in stats}


def running_stats(net: nn.Module) -> BnStats:
    """The running statistics of every BN layer of a standalone network (all channels)."""
    return {name: (m.running_mean.detach().clone(), m.running_var.detach().clone())
            for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)}


def tune_level_bn(supernet: nn.Module, arch: SubnetArch, stats: BnStats, images_uint8: np.ndarray,
                  labels: np.ndarray, spec: SupernetSpec, config: BnTuneConfig | None = None,
                  head: LevelHead | None = None, progress: bool = False) -> tuple[BnStats, LevelHead]:
    """:func:`tune_bn` for ``arch`` of the supernet, which is left active."""
    arch.apply(supernet)
    return tune_bn(supernet, stats, arch.resolution, spec.mean, spec.std, images_uint8, labels, config, head, progress)


def tune_bn(net: nn.Module, stats: BnStats, resolution: int, mean: Sequence[float], std: Sequence[float],
            images_uint8: np.ndarray, labels: np.ndarray, config: BnTuneConfig | None = None,
            head: LevelHead | None = None, progress: bool = False) -> tuple[BnStats, LevelHead]:
    """Train the BN scale/shift of the layers ``stats`` names (their leading channels, with those statistics
    fixed) and the classifier (from ``head``, or the network's) on the images fed at ``resolution``; return the
    folded statistics and the trained classifier. The network's parameters come back unchanged; its BN buffers
    hold the folded statistics."""
    config = config or BnTuneConfig()
    if len(images_uint8) == 0 or len(images_uint8) != len(labels):
        raise ValueError(f"need as many labels as images (>0): {len(images_uint8)} images, {len(labels)} labels")
    device = next(net.parameters()).device
    apply_bn_stats(net, stats)
    layers = _bn_layers(net, stats)
    frozen = {p: p.requires_grad for p in net.parameters()}
    was_training = net.training
    linear = final_linear(net)
    scales: dict[str, _Scale] = {}
    shifts: dict[str, _Shift] = {}
    try:
        for p in frozen:
            p.requires_grad_(False)
        for name, bn in layers.items():
            mu, var = stats[name]
            c = mu.numel()
            cap = torch.full((bn.num_features,), 0.0, device=device)
            cap[:c] = scale_cap(var.to(device), bn.eps)
            mask = (bn.weight.detach().abs() > GAMMA_TOL).float()
            scales[name], shifts[name] = _Scale(cap), _Shift(mask)
            parametrize.register_parametrization(bn, "weight", scales[name])
            parametrize.register_parametrization(bn, "bias", shifts[name])
        # using_head restores the net's classifier afterwards, also when it starts from the net's own
        with using_head(net, head or LevelHead(linear.weight.detach().clone(), linear.bias.detach().clone())):
            linear.weight.requires_grad_(True)
            linear.bias.requires_grad_(True)
            params = [m.s for m in scales.values()] + [m.b for m in shifts.values()] + [linear.weight, linear.bias]
            _train(net, params, resolution, mean, std, images_uint8, labels, config, progress)
            trained = LevelHead(linear.weight.detach().clone(), linear.bias.detach().clone())
        folded: BnStats = {}
        with torch.no_grad():
            for name, bn in layers.items():
                mu, var = (t.to(device) for t in stats[name])
                c = mu.numel()
                s = torch.minimum(scales[name].s, scales[name].cap)[:c]
                b = (shifts[name].b * shifts[name].mask)[:c]
                gamma = bn.parametrizations.weight.original[:c]
                new_mean, new_var = fold_affine(mu, var, bn.eps, gamma, s, b)
                folded[name] = (new_mean.cpu(), new_var.cpu())
    finally:
        for bn in layers.values():
            for attr in ("weight", "bias"):
                if parametrize.is_parametrized(bn, attr):
                    parametrize.remove_parametrizations(bn, attr, leave_parametrized=False)
        for p, flag in frozen.items():
            p.requires_grad_(flag)
        net.train(was_training)
    apply_bn_stats(net, folded)
    return folded, trained


def _train(net: nn.Module, params: Sequence[Tensor], resolution: int, mean: Sequence[float], std: Sequence[float],
           images_uint8: np.ndarray, labels: np.ndarray, config: BnTuneConfig, progress: bool) -> None:
    device = params[0].device
    augment = DeviceAugmenter(images_uint8, device)
    targets = torch.as_tensor(labels).long().to(device)
    gen = torch.Generator(device).manual_seed(config.seed)
    steps = max(1, round(config.epochs * len(targets) / config.batch_size))
    optimiser = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    net.eval()  # the level's statistics stay fixed: what is trained is what the runtime runs
    bar = tqdm(range(steps), desc=f"tune BN r{resolution}", unit="step", leave=False, disable=not progress)
    with torch.enable_grad():
        for _ in bar:
            idx = torch.randint(0, len(targets), (config.batch_size,), device=device, generator=gen)
            loss = F.cross_entropy(net(to_input(augment(idx, gen), resolution, mean, std)), targets[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError("BN tuning diverged (non-finite loss): lower the learning rate")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)


def fit_level(supernet: nn.Module, arch: SubnetArch, stats: BnStats, images_uint8: np.ndarray,
              labels: np.ndarray | None, spec: SupernetSpec, tune: BnTuneConfig | None
              ) -> tuple[BnStats, LevelHead | None]:
    """A library level's statistics and classifier head: :func:`fit_tuned_head` for ``arch`` of the supernet."""
    arch.apply(supernet)
    return fit_tuned_head(supernet, stats, arch.resolution, spec.mean, spec.std, images_uint8, labels, tune)


def fit_tuned_head(net: nn.Module, stats: BnStats, resolution: int, mean: Sequence[float], std: Sequence[float],
                   images_uint8: np.ndarray, labels: np.ndarray | None, tune: BnTuneConfig | None
                   ) -> tuple[BnStats, LevelHead | None]:
    """With ``tune`` the BN scale/shift and classifier trained and folded into ``stats`` (:func:`tune_bn`), then
    the classifier head fitted on the images from there (``offline.heads.fit_head``): the statistics (left
    applied) and the head. Without ``labels``: ``stats`` and no head (the shared classifier); ValueError when
    ``tune`` asks for training all the same."""
    if labels is None:
        if tune is not None:
            raise ValueError("BN tuning trains the classifier with it: it needs the heads' labels (calib_y; "
                             "drop --no-heads)")
        return stats, None
    start = None
    if tune is not None:
        stats, start = tune_bn(net, stats, resolution, mean, std, images_uint8, labels, tune, progress=True)
    with using_head(net, start):
        return stats, fit_head(net, images_uint8, labels, resolution, mean, std, progress=True)
