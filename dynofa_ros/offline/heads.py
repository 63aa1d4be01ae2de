"""Fit one level's classifier head on its own features (``dynofa calibrate`` / ``build-library``).

The sandwich rule trains one classifier for every subnet, on labels for the largest and on the largest's
outputs for the others. After a level's BN calibration its penultimate features are fixed, so its last linear
layer can be refitted for them alone: multinomial logistic regression (cross-entropy, L-BFGS, no weight decay),
started from the shared classifier, on the training images and their mirror images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from dynofa_ros.offline.calibrate import Images, uint8_batches
from dynofa_ros.offline.data import scaled_batch, to_input
from dynofa_ros.supernet.heads import LevelHead, final_linear

HEAD_ITERATIONS = 200


def head_note(n_images: int, iterations: int = HEAD_ITERATIONS, bn_tuned: bool = False, dataset: str = "cifar10"
              ) -> str:
    """The library's ``heads.fit`` record for heads fitted on ``n_images`` training images (``bn_tuned``: after
    the level's BN scale/shift tuning, from the classifier trained with it)."""
    start, after = (("the classifier trained with the level's BN scale/shift", "its BN calibration and tuning")
                    if bn_tuned else ("the shared classifier", "the level's BN calibration"))
    return (f"final linear layer per level: cross-entropy, L-BFGS ({iterations} iterations, no weight decay) from "
            f"{start}, on the features of {n_images} {dataset}-train images and their mirror images, after {after}")


@torch.no_grad()
def penultimate_features(net: nn.Module, images_uint8: Images, resolution: int, mean: Sequence[float],
                         std: Sequence[float], batch: int = 500, mirror: bool = False,
                         progress: bool = False) -> Tensor:
    """The inputs of ``net``'s classifier (eval mode, float32, on its device) for uint8 images fed at ``resolution``."""
    device = next(net.parameters()).device
    captured: list[Tensor] = []
    hook = final_linear(net).register_forward_pre_hook(lambda _m, args: captured.append(args[0].float()))
    was_training = net.training
    net.eval()
    batch = scaled_batch(batch, resolution)
    try:
        for chunk in tqdm(uint8_batches(images_uint8, batch, device), desc="features", unit="batch", leave=False,
                          total=-(-len(images_uint8) // batch), disable=not progress):
            net(to_input(chunk.flip(2) if mirror else chunk, resolution, mean, std))
    finally:
        hook.remove()
        net.train(was_training)
    return torch.cat(captured)


def fit_linear(features: Tensor, labels: Tensor, init: LevelHead, iterations: int = HEAD_ITERATIONS) -> LevelHead:
    """Weights and bias minimising the cross-entropy of ``features @ W.T + b`` (L-BFGS from ``init``), on the
    features' device."""
    if len(features) == 0 or len(features) != len(labels):
        raise ValueError(f"need as many labels as feature rows (>0): {len(features)} rows, {len(labels)} labels")
    weight = init.weight.detach().float().to(features.device).clone().requires_grad_()
    bias = init.bias.detach().float().to(features.device).clone().requires_grad_()
    labels = labels.long().to(features.device)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return LevelHead(weight.detach(), bias.detach())


def fit_head(net: nn.Module, images_uint8: Images, labels: np.ndarray | Tensor, resolution: int,
             mean: Sequence[float], std: Sequence[float], iterations: int = HEAD_ITERATIONS,
             progress: bool = False) -> LevelHead:
    """A head for ``net`` as it is now (active arch, calibrated BN), fitted on the images and their mirror
    images; ``net`` itself is not changed."""
    features = torch.cat([penultimate_features(net, images_uint8, resolution, mean, std, mirror=m, progress=progress)
                          for m in (False, True)])
    targets = torch.as_tensor(labels).long().to(features.device).repeat(2)
    linear = final_linear(net)
    return fit_linear(features, targets, LevelHead(linear.weight, linear.bias), iterations)
