"""Serve a library's levels with a backend and compare each with its eager subnet on real images
(``dynofa export``): the share of frames whose top-1 class is the same, and the largest logit difference."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from dynofa_ros.offline.calibrate import Images, uint8_batches
from dynofa_ros.offline.data import scaled_batch, to_input
from dynofa_ros.supernet.runtime import DynamicNetwork


@dataclass(frozen=True)
class LevelAgreement:
    """One level served by ``backend`` against its eager subnet on ``images`` images."""

    level: str
    backend: str
    images: int
    top1_agree: float
    max_abs_diff: float


@torch.inference_mode()
def compare_with_eager(net: DynamicNetwork, images_uint8: Images, batch: int = 256) -> list[LevelAgreement]:
    """Each level of ``net`` (cache mode) as served against its eager subnet, on the same normalised inputs."""
    mean, std = net.spec.mean, net.spec.std
    results = []
    for i, level in enumerate(tqdm(net.levels, desc="compare levels with eager", unit="level")):
        runner, module, r = net.runner(i), net.module(i), level.arch.resolution
        agree, diff = 0, 0.0
        for chunk in uint8_batches(images_uint8, scaled_batch(batch, r), net.device):
            x = to_input(chunk, r, mean, std)
            served, eager = runner(x).float(), module(x).float()
            agree += int((served.argmax(1) == eager.argmax(1)).sum())
            diff = max(diff, (served - eager).abs().max().item())
        results.append(LevelAgreement(level.name, runner.backend, len(images_uint8), agree / len(images_uint8), diff))
    return results
