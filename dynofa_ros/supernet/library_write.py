"""Writing a subnet library's files: ``supernet.pt``, ``bn_stats.pt``, ``heads.pt`` and ``library.json``.

The tensor files need torch; the library records (:mod:`dynofa_ros.supernet.library`) do not, so the
writers live here and the runtime nodes that only read levels never load the training stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from dynofa_ros.supernet.bn import BnStats, save_bn_stats
from dynofa_ros.supernet.checkpoint import save_supernet
from dynofa_ros.supernet.heads import LevelHead, save_heads
from dynofa_ros.supernet.library import HEADS_FILE, FileRef, Level, SubnetLibrary, sha256_file
from dynofa_ros.supernet.spec import SupernetSpec


def save_heads_ref(directory: str | Path, heads: Sequence[LevelHead]) -> FileRef:
    """Write ``heads`` as ``directory/heads.pt``; the library's reference to it."""
    save_heads(Path(directory) / HEADS_FILE, heads)
    return FileRef(HEADS_FILE, sha256_file(Path(directory) / HEADS_FILE))


def write_library(
    directory: str | Path,
    name: str,
    supernet: nn.Module,
    spec: SupernetSpec,
    levels: Sequence[Level],
    per_level_stats: Sequence[BnStats],
    eval_set: str = "",
    calibration: str = "",
    heads: Sequence[LevelHead] | None = None,
    heads_fit: str = "",
) -> SubnetLibrary:
    """Write ``supernet.pt``, ``bn_stats.pt``, ``heads.pt`` (with ``heads``) and ``library.json`` into
    ``directory``; return the library."""
    if len(per_level_stats) != len(levels):
        raise ValueError(f"{len(per_level_stats)} BN statistics sets for {len(levels)} levels")
    if heads is not None and len(heads) != len(levels):
        raise ValueError(f"{len(heads)} classifier heads for {len(levels)} levels")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_supernet(directory / "supernet.pt", supernet, spec)
    save_bn_stats(directory / "bn_stats.pt", per_level_stats)
    lib = SubnetLibrary(
        name=name, spec=spec,
        checkpoint=FileRef("supernet.pt", sha256_file(directory / "supernet.pt")),
        bn_stats=FileRef("bn_stats.pt", sha256_file(directory / "bn_stats.pt")),
        levels=list(levels), eval_set=eval_set, calibration=calibration,
    )
    if heads is not None:
        lib.heads, lib.heads_fit = save_heads_ref(directory, heads), heads_fit
    elif (directory / HEADS_FILE).exists():
        (directory / HEADS_FILE).unlink()  # a previous library's heads: not this one's
    lib.save(directory / "library.json")
    return lib
