"""Supernet checkpoints of any family: our fp16 shipped format, and the published ``ofa`` ImageNet layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.family import Spec, family_of, spec_from_dict
from dynofa_ros.supernet.spec import SupernetSpec

FORMAT = "dynofa-supernet/1"

# Old ofa key spellings -> current ones (the rewrites OFAMobileNetV3.load_state_dict applies).
_KEY_REWRITES = (
    (".bn.bn.", ".bn."),
    (".conv.conv.weight", ".conv.weight"),
    (".linear.linear.", ".linear."),
    (".linear.", ".linear.linear."),
    ("bn.", "bn.bn."),
    ("conv.weight", "conv.conv.weight"),
)
_SHOWN = 5


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the supernet spec."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


def save_supernet(path: str | Path, supernet: nn.Module, spec: Spec) -> None:
    """Write ``{"format", "spec", "state_dict"}`` with floating tensors in fp16 (atomically; creates the
    parent folder)."""
    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous()
             for k, v in supernet.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "spec": spec.to_dict(), "state_dict": state}, tmp)
    os.replace(tmp, path)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointNotFoundError(f"supernet checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, foreign objects: several exception types
        raise CheckpointError(f"cannot read supernet checkpoint {path} (corrupt, truncated or not a "
                              f"weights-only torch file): {type(exc).__name__}: {exc}") from exc


def _unwrap(path: Path, data: Any, spec: Spec | None) -> tuple[dict[str, Tensor], Spec]:
    if isinstance(data, dict) and "format" in data:
        if data["format"] != FORMAT:
            raise CheckpointError(f"{path}: format {data['format']!r} is not supported (expected {FORMAT!r})")
        try:
            file_spec = spec_from_dict(data["spec"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid spec record: {exc}") from exc
        if spec is not None and spec != file_spec:
            ours, theirs = file_spec.to_dict(), spec.to_dict()
            diff = {k: (ours.get(k), theirs.get(k)) for k in {**ours, **theirs} if ours.get(k) != theirs.get(k)}
            raise CheckpointError(f"{path}: its spec differs from the requested one (file, requested): {diff}")
        return data.get("state_dict"), file_spec
    if spec is None:
        raise CheckpointError(f"{path} is a plain ofa state dict without a spec: name the net it is (dynofa: --net "
                              "ofa_mbv3_d234_e346_k357_w1.2 etc., or the --net-* fields: width, ks/e/d lists, classes)")
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    return data, spec


def _remap(state: dict[str, Tensor], model_keys: set[str]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename old-style keys to the model's; returns the mapped dict and the keys that fit nowhere."""
    mapped: dict[str, Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        base = key.replace(".mobile_inverted_conv.", ".conv.")
        candidates = [base] + [base.replace(old, new) for old, new in _KEY_REWRITES if old in base]
        target = next((c for c in candidates if c in model_keys), None)
        if target is None:
            unexpected.append(key)
        else:
            mapped[target] = value
    return mapped, unexpected


def _hint(key: str) -> str:
    return " (number of classes differs?)" if key.startswith("classifier.") else ""


def _shape_fields(spec: Spec) -> str:
    """The spec fields that the tensors' shapes follow, for messages."""
    if isinstance(spec, SupernetSpec):
        return (f"width {spec.width_mult}, ks {list(spec.ks_list)}, e {list(spec.expand_list)}, "
                f"d {list(spec.depth_list)}")
    return ", ".join(f"{k} {v}" for k, v in spec.to_dict().items()
                     if k not in ("family", "num_classes", "class_names", "mean", "std", "dropout"))


def _some(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_supernet(path: str | Path, spec: Spec | None = None) -> tuple[nn.Module, Spec]:
    """Build the supernet of the spec's family and load a checkpoint (float32, eval mode).

    Accepts our shipped format (spec inside; ``spec`` if given must equal it) and a bare ``ofa``
    state dict or ``{"state_dict": ...}`` (the published ImageNet supernets; ``spec`` required).
    Raises CheckpointError naming the problem (missing/unexpected keys, shape mismatches, corrupt
    file) and CheckpointNotFoundError (also a FileNotFoundError) for a missing file.
    """
    path = Path(path)
    state, spec = _unwrap(path, _read(path), spec)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the state dict is not a mapping of names to tensors")
    supernet = family_of(spec).build(spec)
    model_state = supernet.state_dict()
    mapped, unexpected = _remap(state, set(model_state))
    missing = sorted(set(model_state) - set(mapped))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_some(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_some(unexpected)})")
        raise CheckpointError(f"{path} does not fit {spec.family} ({_shape_fields(spec)}): " + "; ".join(parts))
    wrong = [f"{k}: file {tuple(v.shape)} vs spec {tuple(model_state[k].shape)}{_hint(k)}"
             for k, v in mapped.items() if v.shape != model_state[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: {len(wrong)} tensors have the wrong shape for spec ({_shape_fields(spec)}, "
                              f"{spec.num_classes} classes): {_some(wrong)}")
    mapped = {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}
    nn.Module.load_state_dict(supernet, mapped, strict=True)
    supernet.eval()
    return supernet, spec
