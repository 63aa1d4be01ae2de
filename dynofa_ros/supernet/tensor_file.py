"""The flat ``{"<level>/...": tensor}`` files a library keeps per level (BN statistics, classifier heads)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def save_tensor_dict(path: str | Path, flat: Mapping[str, Tensor]) -> None:
    """Write ``flat`` as float32, contiguous CPU tensors (atomically: a crash leaves the old file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().float().cpu().contiguous() for k, v in flat.items()}, tmp)
    os.replace(tmp, path)


def read_tensor_dict(path: str | Path, what: str, error: type[Exception]) -> dict[Any, Any]:
    """The dict in a ``torch.save`` file (``weights_only``); FileNotFoundError when missing, ``error`` when the
    file is corrupt or holds something else. ``what`` names the file in messages."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        flat = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise error(f"cannot read {what} file {path} (corrupt or truncated?): {exc}") from exc
    if not isinstance(flat, dict):
        raise error(f"{path}: expected a dict of tensors, found {type(flat).__name__}")
    return flat
