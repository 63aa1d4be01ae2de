"""The state of a supernet training run, portable between machines and runs.

One folder of three files, each under the device machine's 16 MiB transfer limit, so a run can stop on
one GPU machine and go on, with the same learning-rate schedule and momentum, on the next:

* ``supernet.pt``: the weights in the shipped checkpoint format (fp16, spec inside);
* ``momentum.pt``: the optimizer state: ``{parameter name: fp16 SGD momentum buffer}``, or for AdamW
  ``{"<parameter name>:exp_avg" / ":exp_avg_sq": bf16 moment, ":step": step count}`` (bf16: squared gradients
  underflow fp16);
* ``progress.json``: epochs/steps done, wall time, per-epoch times, the recipe, the spec, and the SHA-256
  of the two tensor files. It is written last, so a crash between the writes is caught on load.

Rounding the weights to fp16 once per resume perturbs them by < 0.1 % (relative), far below one SGD step's
noise; the run itself trains in fp32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.checkpoint import load_supernet, save_supernet
from dynofa_ros.supernet.family import Spec
from dynofa_ros.supernet.library import sha256_file

WEIGHTS, MOMENTUM, PROGRESS = "supernet.pt", "momentum.pt", "progress.json"
STATE_FILES = (WEIGHTS, MOMENTUM, PROGRESS)
STATE_FORMAT = "dynofa-train-state/1"
# recipe fields a fixed schedule cannot change halfway: the learning rate would jump, the number of steps
# change, or (seed) the validation split would take in images already trained on
SCHEDULE_FIELDS = ("schedule", "epochs", "batch_size", "lr", "warmup_epochs", "seed", "train_images")
# the optimizer state entries kept, and the dtype each is stored in; SGD's momentum under the bare parameter name
SGD_MOMENTUM = "momentum_buffer"
STORED_STATE = {SGD_MOMENTUM: torch.float16, "exp_avg": torch.bfloat16, "exp_avg_sq": torch.bfloat16,
                "step": torch.float32}


@dataclass
class Progress:
    """Where a run stands: epochs and steps done, wall time spent, per-epoch wall times (the budget's estimate)."""

    epoch: int = 0
    step: int = 0
    elapsed_s: float = 0.0
    cycle_s: list[float] = field(default_factory=list)


def _optimizer_state(supernet: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Tensor]:
    """The :data:`STORED_STATE` entries of ``optimizer``'s state, by parameter name, as ``momentum.pt`` holds them."""
    state = {}
    for name, param in supernet.named_parameters():
        for entry, value in optimizer.state.get(param, {}).items():
            if entry in STORED_STATE and value is not None:
                key = name if entry == SGD_MOMENTUM else f"{name}:{entry}"
                state[key] = value.detach().to(STORED_STATE[entry]).cpu()
    return state


def _load_optimizer_state(supernet: nn.Module, optimizer: torch.optim.Optimizer, state: Any, where: Path) -> None:
    """Put an :func:`_optimizer_state` record into ``optimizer`` (float32, moments on their parameters' device);
    ValueError when it does not fit ``supernet``'s parameters."""
    if not isinstance(state, dict):
        raise ValueError(f"{where} does not fit this supernet's parameters: not a mapping")
    params = dict(supernet.named_parameters())
    entries = []
    for key, value in state.items():
        name, _, entry = str(key).partition(":")
        entry = entry or SGD_MOMENTUM
        param = params.get(name)
        if param is None or entry not in STORED_STATE or not isinstance(value, Tensor) or (
                entry != "step" and value.shape != param.shape):
            raise ValueError(f"{where} does not fit this supernet's parameters (at {key!r})")
        entries.append((param, entry, value.float() if entry == "step" else value.to(param.device, torch.float32)))
    for param, entry, value in entries:  # all checked first: a misfit leaves the optimizer as it was
        optimizer.state[param][entry] = value


def save_train_state(folder: Path | str, supernet: nn.Module, spec: Spec, optimizer: torch.optim.Optimizer,
                     progress: Progress, recipe: dict[str, Any]) -> None:
    """Write the three state files into ``folder``: all three as ``.partial`` files first, then renamed, with
    ``progress.json`` last, so an interruption leaves the previous state whole (or, between the renames,
    a mismatch that :func:`read_progress` reports)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    partial = {name: folder / (name + ".partial") for name in STATE_FILES}
    save_supernet(partial[WEIGHTS], supernet, spec)
    torch.save(_optimizer_state(supernet, optimizer), partial[MOMENTUM])
    record = {"format": STATE_FORMAT, "epoch": progress.epoch, "step": progress.step,
              "elapsed_s": progress.elapsed_s, "cycle_s": progress.cycle_s, "spec": spec.to_dict(),
              "recipe": recipe, "sha256": {name: sha256_file(partial[name]) for name in (WEIGHTS, MOMENTUM)}}
    partial[PROGRESS].write_text(json.dumps(record, indent=1) + "\n")
    for name in STATE_FILES:  # progress.json last
        partial[name].replace(folder / name)


def read_progress(folder: Path | str) -> dict[str, Any]:
    """``progress.json`` of a state folder, checked against the two tensor files beside it.

    FileNotFoundError when there is no state; ValueError naming the problem when it is corrupt, foreign, or
    the files do not belong together (a write interrupted halfway).
    """
    folder = Path(folder)
    path = folder / PROGRESS
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {folder} holds no {PROGRESS} (a training state is "
                                f"{', '.join(STATE_FILES)})")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a dynofa training state (format {STATE_FORMAT!r})")
    for name in (WEIGHTS, MOMENTUM):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: the training state needs {', '.join(STATE_FILES)}")
        if sha256_file(folder / name) != record.get("sha256", {}).get(name):
            raise ValueError(f"{folder / name} does not match {PROGRESS} (SHA-256 differs): the state was written "
                             "only partly or mixed with another run's files")
    return record


def check_recipe(saved: dict[str, Any], recipe: dict[str, Any], where: Path) -> None:
    """ValueError when the optimizer differs (its state would not fit) or a fixed schedule would change halfway
    (``SCHEDULE_FIELDS`` differ). A recipe without an optimizer is SGD's, the only one there was before."""
    before, now = saved.get("optimizer", "sgd"), recipe.get("optimizer", "sgd")
    if before != now:
        raise ValueError(f"{where} was trained with {before}, whose state does not fit {now}: pass --optimizer "
                         f"{before} to continue it, or start a new run with --init")
    if "fixed" not in (saved.get("schedule"), recipe.get("schedule")):
        return  # an interrupted budget-fitted run resumes in the same call and re-plans its cycle anyway
    changed = [f"{k}={saved.get(k)!r} (now {recipe.get(k)!r})"
               for k in SCHEDULE_FIELDS if saved.get(k) != recipe.get(k)]
    if changed:
        raise ValueError(f"{where} was trained on a fixed schedule with {', '.join(changed)}; pass the same values "
                         "to continue it, or start a new run with --init")


def load_train_state(folder: Path | str, supernet: nn.Module, spec: Spec,
                     optimizer: torch.optim.Optimizer | None = None, recipe: dict[str, Any] | None = None) -> Progress:
    """Load a state folder's weights into ``supernet`` (and its optimizer state into ``optimizer``); its
    :class:`Progress`.

    ``recipe`` (the new run's, as a dict) is checked with :func:`check_recipe`. Errors as :func:`read_progress`,
    and ValueError for another supernet spec or a momentum file that does not fit the model.
    """
    folder = Path(folder)
    record = read_progress(folder)
    if record.get("spec") != spec.to_dict():
        raise ValueError(f"{folder} was trained with a different supernet spec")
    if recipe is not None:
        check_recipe(record.get("recipe", {}), recipe, folder)
    weights, _ = load_supernet(folder / WEIGHTS, spec)  # CheckpointError is a ValueError
    try:
        state = torch.load(folder / MOMENTUM, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle: several exception types
        raise ValueError(f"cannot read {folder / MOMENTUM}: {type(exc).__name__}: {exc}") from exc
    supernet.load_state_dict(weights.state_dict())
    if optimizer is not None:
        _load_optimizer_state(supernet, optimizer, state, folder / MOMENTUM)
    return Progress(int(record["epoch"]), int(record["step"]), float(record["elapsed_s"]),
                    [float(c) for c in record["cycle_s"]])
