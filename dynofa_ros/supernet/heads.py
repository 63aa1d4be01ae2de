"""Per-level classifier heads: the final linear layer refitted for one level's features; apply, save, load.

Every level shares the supernet's convolutions; its BN statistics and, optionally, its last linear layer
(1280 x classes weights and a bias, 0.2 % of the supernet) are its own. ``offline/heads.py`` fits them (``dynofa
calibrate``, ``build-library``, ``evaluate --fit-heads``, and ``experiments.compare`` for the baselines).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.tensor_file import read_tensor_dict, save_tensor_dict


class HeadError(ValueError):
    """A heads file or record that does not fit its supernet/levels."""


@dataclass
class LevelHead:
    """One level's classifier: ``weight`` (classes x features) and ``bias`` (classes)."""

    weight: Tensor
    bias: Tensor


def final_linear(net: nn.Module) -> nn.Linear:
    """The network's last ``nn.Linear`` (the classifier of ``ofa``'s networks and of the baselines)."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise HeadError(f"{type(net).__name__} has no nn.Linear layer to hold a classifier head")
    return linears[-1]


def check_head(net: nn.Module, head: LevelHead, where: str = "head") -> None:
    """HeadError unless ``head`` has the shapes of ``net``'s classifier."""
    linear = final_linear(net)
    if tuple(head.weight.shape) != tuple(linear.weight.shape) or tuple(head.bias.shape) != tuple(linear.bias.shape):
        raise HeadError(f"{where}: weight {tuple(head.weight.shape)} / bias {tuple(head.bias.shape)} do not fit the "
                        f"classifier ({tuple(linear.weight.shape)} / {tuple(linear.bias.shape)})")


def head_pairs(net: nn.Module, head: LevelHead) -> tuple[list[Tensor], list[Tensor]]:
    """(targets, sources): the classifier's parameters and ``head``'s tensors on their device, for one copy."""
    check_head(net, head)
    linear = final_linear(net)
    return [linear.weight, linear.bias], [head.weight.to(linear.weight), head.bias.to(linear.bias)]


def apply_head(net: nn.Module, head: LevelHead) -> None:
    """Copy ``head`` into ``net``'s classifier."""
    targets, sources = head_pairs(net, head)
    with torch.no_grad():
        for t, s in zip(targets, sources, strict=True):
            t.copy_(s)


@contextmanager
def using_head(net: nn.Module, head: LevelHead | None) -> Iterator[None]:
    """``net`` with ``head`` as its classifier inside the block, its own one restored after (None: unchanged)."""
    if head is None:
        yield
        return
    linear = final_linear(net)
    saved = LevelHead(linear.weight.detach().clone(), linear.bias.detach().clone())
    apply_head(net, head)
    try:
        yield
    finally:
        apply_head(net, saved)


def save_heads(path: str | Path, heads: Sequence[LevelHead]) -> None:
    """Write every level's head as ``{"<level>/weight|bias": tensor}`` (float32)."""
    flat: dict[str, Tensor] = {}
    for i, head in enumerate(heads):
        flat[f"{i}/weight"], flat[f"{i}/bias"] = head.weight, head.bias
    save_tensor_dict(path, flat)


def load_heads(path: str | Path) -> list[LevelHead]:
    """Read a file written by :func:`save_heads`; HeadError/FileNotFoundError on a bad file."""
    flat = read_tensor_dict(path, "classifier heads", HeadError)
    parts: dict[int, dict[str, Tensor]] = {}
    for key, value in flat.items():
        level, _, kind = key.partition("/") if isinstance(key, str) else ("", "", "")
        if not (level.isascii() and level.isdigit()) or kind not in ("weight", "bias") or not isinstance(value, Tensor):
            raise HeadError(f"{path}: entry {key!r} is not a '<level>/weight|bias' tensor")
        parts.setdefault(int(level), {})[kind] = value.float()
    if sorted(parts) != list(range(len(parts))):
        raise HeadError(f"{path}: level indices {sorted(parts)} are not 0..{len(parts) - 1}")
    heads = []
    for i in range(len(parts)):
        w, b = parts[i].get("weight"), parts[i].get("bias")
        if w is None or b is None or w.ndim != 2 or b.shape != (w.shape[0],):
            raise HeadError(f"{path}: level {i} needs a 2-D weight and a bias with one entry per row")
        heads.append(LevelHead(w, b))
    return heads
