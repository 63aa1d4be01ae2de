"""Writing a subnet library's files: ``supernet.pt``, ``bn_stats.pt``, ``heads.pt`` and ``library.json``.

The tensor files need torch; the library records (:mod:`dynofa_ros.supernet.library`) do not, so the
writers live here and the runtime nodes that only read levels never load the training stack.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from dynofa_ros.supernet.bn import BnStats, save_bn_stats
from dynofa_ros.supernet.checkpoint import save_supernet
from dynofa_ros.supernet.family import Spec, family_of
from dynofa_ros.supernet.heads import LevelHead, save_heads
from dynofa_ros.supernet.library import HEADS_FILE, FileRef, Level, SubnetLibrary, sha256_file

BN_STATS_FILE = "bn_stats.pt"


def _save_ref(directory: Path, name: str, save: Callable[[Path, Any], None], content: Any) -> FileRef:
    """``save`` ``content`` as ``directory/name``; the library's reference to it."""
    save(directory / name, content)
    return FileRef(name, sha256_file(directory / name))


def save_heads_ref(directory: str | Path, heads: Sequence[LevelHead]) -> FileRef:
    """Write ``heads`` as ``directory/heads.pt``; the library's reference to it."""
    return _save_ref(Path(directory), HEADS_FILE, save_heads, heads)


def write_library(
    directory: str | Path,
    name: str,
    supernet: nn.Module,
    spec: Spec,
    levels: Sequence[Level],
    per_level_stats: Sequence[BnStats] | None = None,
    eval_set: str = "",
    calibration: str = "",
    heads: Sequence[LevelHead] | None = None,
    heads_fit: str = "",
) -> SubnetLibrary:
    """Write ``supernet.pt``, ``bn_stats.pt`` (``per_level_stats``: required for a family with BN statistics, None
    for one without), ``heads.pt`` (with ``heads``) and ``library.json`` into ``directory``; return the library."""
    family = family_of(spec)
    if family.bn_statistics != (per_level_stats is not None):
        raise ValueError(f"{family.name} libraries {'need' if family.bn_statistics else 'have no'} per-level BN "
                         "statistics")
    if per_level_stats is not None and len(per_level_stats) != len(levels):
        raise ValueError(f"{len(per_level_stats)} BN statistics sets for {len(levels)} levels")
    if heads is not None and len(heads) != len(levels):
        raise ValueError(f"{len(heads)} classifier heads for {len(levels)} levels")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_supernet(directory / "supernet.pt", supernet, spec)
    for file, content in ((BN_STATS_FILE, per_level_stats), (HEADS_FILE, heads)):
        if content is None:
            (directory / file).unlink(missing_ok=True)  # a previous library's file: not this one's
    bn_ref = None if per_level_stats is None else _save_ref(directory, BN_STATS_FILE, save_bn_stats, per_level_stats)
    lib = SubnetLibrary(
        name=name, spec=spec,
        checkpoint=FileRef("supernet.pt", sha256_file(directory / "supernet.pt")),
        bn_stats=bn_ref, levels=list(levels), eval_set=eval_set, calibration=calibration if bn_ref else "",
        heads=None if heads is None else save_heads_ref(directory, heads), heads_fit=heads_fit if heads else "",
    )
    lib.save(directory / "library.json")
    return lib
