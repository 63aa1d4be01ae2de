"""Subnet library file (JSON, ``schema_version`` 1): supernet, checkpoint, BN statistics, heads and levels.

The schema is described in docs/ARCHITECTURE.md. Paths inside the file are relative to the file. The supernet
spec's ``family`` (:mod:`dynofa_ros.supernet.family`; ``ofa_mbv3`` when absent, as in the files written before there
were other families) decides the levels' arch record type and whether there is a BN statistics file.
The records here are plain data and load without torch (the manager node reads levels, latencies and
accuracies only); writing a library's tensor files is :mod:`dynofa_ros.supernet.library_write`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynofa_ros.package_files import env_path, package_file
from dynofa_ros.supernet.family import Arch, Spec, family_of, spec_from_dict
from dynofa_ros.supernet.serving import BACKENDS, TORCH

SCHEMA_VERSION = 1
LIBRARY_ENV = "DYNOFA_LIBRARY"
SHIPPED_MODELS = {"mbv3": "cifar10_mbv3", "vit": "cifar10_vit"}  # name -> folder under models/ of the share directory
DEFAULT_MODEL = "mbv3"
HEADS_FILE = "heads.pt"


class LibraryError(ValueError):
    """A subnet library file that is malformed, inconsistent or whose referenced files do not match."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, optional: bool = False) -> Any:
    if not isinstance(data, dict):
        raise LibraryError(f"{where}: expected an object, found {type(data).__name__}")
    if key not in data or data[key] is None:
        if optional:
            return None
        raise LibraryError(f"{where}: missing field {key!r}")
    value = data[key]
    # bool is an int subclass: never accept it for a numeric field
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise LibraryError(f"{where}.{key}: expected {kind}, found a boolean")
    if not isinstance(value, kind):
        raise LibraryError(f"{where}.{key}: expected {kind}, found {type(value).__name__} {value!r}")
    return value


def _non_negative(value: float, name: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise LibraryError(f"{name} must be a finite non-negative number, got {value!r}")
    return value


@dataclass(frozen=True)
class LatencyProfile:
    """Latency of one level measured on one device profile (seconds)."""

    profile: str
    device: str
    threads: int
    p50_s: float
    p90_s: float
    method: str
    processor: str = ""
    freq_hz: float | None = None
    batch: int = 1
    backend: str = TORCH  # what ran the level (dynofa_ros.supernet.serving.BACKENDS)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> LatencyProfile:
        batch = _get(data, "batch", int, where, optional=True)
        backend = _get(data, "backend", str, where, optional=True) or TORCH  # absent: measured eagerly
        if backend not in BACKENDS:
            raise LibraryError(f"{where}.backend: unknown backend {backend!r}; expected one of {BACKENDS}")
        rec = cls(
            profile=_get(data, "profile", str, where),
            device=_get(data, "device", str, where),
            threads=_get(data, "threads", int, where),
            p50_s=float(_get(data, "p50_s", (int, float), where)),
            p90_s=float(_get(data, "p90_s", (int, float), where)),
            method=_get(data, "method", str, where),
            processor=_get(data, "processor", str, where, optional=True) or "",
            freq_hz=_get(data, "freq_hz", (int, float), where, optional=True),
            batch=1 if batch is None else batch,  # optional; absent means 1, an explicit 0 is an error
            backend=backend,
        )
        if rec.threads < 1 or rec.batch < 1:
            raise LibraryError(f"{where}: threads and batch must be >= 1")
        _non_negative(rec.p50_s, f"{where}.p50_s")
        _non_negative(rec.p90_s, f"{where}.p90_s")
        if rec.p90_s < rec.p50_s:
            raise LibraryError(f"{where}: p90_s {rec.p90_s} is below p50_s {rec.p50_s}")
        if rec.freq_hz is not None:
            _non_negative(rec.freq_hz, f"{where}.freq_hz")
        return rec

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "device": self.device, "processor": self.processor,
            "threads": self.threads, "freq_hz": self.freq_hz, "batch": self.batch,
            "p50_s": self.p50_s, "p90_s": self.p90_s, "method": self.method, "backend": self.backend,
        }


@dataclass(frozen=True)
class Level:
    """One operating point of the library: a subnet and what it costs/achieves."""

    name: str
    arch: Arch
    top1: float | None
    macs: int
    params: int
    latency: tuple[LatencyProfile, ...] = ()

    def latency_for(self, profile: str, backend: str = TORCH) -> LatencyProfile | None:
        """The latency measured on ``profile`` (e.g. ``"cpu-1t"``) with ``backend``, or None."""
        return next((p for p in self.latency if p.profile == profile and p.backend == backend), None)

    def latency_except(self, profiles: Sequence[str], backends: Sequence[str] = (TORCH,)
                       ) -> tuple[LatencyProfile, ...]:
        """The latency records but those of ``profiles`` measured with one of ``backends`` (the ones kept when
        ``profiles`` are re-timed with ``backends``)."""
        return tuple(p for p in self.latency if p.profile not in profiles or p.backend not in backends)

    def latency_served(self, backend: str) -> dict[str, LatencyProfile]:
        """Per profile, the record of ``backend``, else (not measured with it) the eager one."""
        records = {p.profile: p for p in self.latency if p.backend == TORCH}
        records.update({p.profile: p for p in self.latency if p.backend == backend})
        return records

    @classmethod
    def from_dict(cls, data: dict[str, Any], spec: Spec, where: str) -> Level:
        try:
            arch = family_of(spec).arch_type.from_dict(_get(data, "arch", dict, where))
            arch.validate(spec)
        except ValueError as exc:
            raise LibraryError(f"{where}.arch: {exc}") from exc
        top1 = _get(data, "top1", (int, float), where, optional=True)
        if top1 is not None and not 0.0 <= top1 <= 1.0:
            raise LibraryError(f"{where}.top1 must be a fraction in [0, 1], got {top1}")
        latency = _get(data, "latency", list, where, optional=True) or []
        level = cls(
            name=_get(data, "name", str, where),
            arch=arch,
            top1=None if top1 is None else float(top1),
            macs=int(_non_negative(_get(data, "macs", int, where), f"{where}.macs")),
            params=int(_non_negative(_get(data, "params", int, where), f"{where}.params")),
            latency=tuple(LatencyProfile.from_dict(p, f"{where}.latency[{j}]") for j, p in enumerate(latency)),
        )
        profiles = [f"{p.profile} ({p.backend})" for p in level.latency]
        if len(set(profiles)) != len(profiles):
            raise LibraryError(f"{where}: duplicate latency records {profiles}")
        return level

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "arch": self.arch.to_dict(), "top1": self.top1, "macs": self.macs,
            "params": self.params, "latency": [p.to_dict() for p in self.latency],
        }


def level_index(levels: Sequence[Level], level: int | str) -> int:
    """Index of ``level`` (an index or a level name) in ``levels``; LibraryError (a ValueError) if absent."""
    if isinstance(level, str):
        for i, lv in enumerate(levels):
            if lv.name == level:
                return i
        raise LibraryError(f"no level named {level!r}; levels: {[lv.name for lv in levels]}")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < len(levels):
        raise LibraryError(f"level {level!r} out of range 0..{len(levels) - 1}")
    return level


@dataclass(frozen=True)
class FileRef:
    """A file next to the library: relative path and SHA-256 of its content."""

    path: str
    sha256: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> FileRef:
        ref = cls(_get(data, "path", str, where), _get(data, "sha256", str, where).lower())
        if len(ref.sha256) != 64 or any(c not in "0123456789abcdef" for c in ref.sha256):
            raise LibraryError(f"{where}.sha256 is not a hex SHA-256 digest: {ref.sha256!r}")
        return ref

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}


@dataclass
class SubnetLibrary:
    """The ordered levels of one supernet (level 0 fastest, last most accurate) and its files: ``bn_stats`` exactly
    when the supernet's family has BN statistics."""

    name: str
    spec: Spec
    checkpoint: FileRef
    bn_stats: FileRef | None
    levels: list[Level]
    eval_set: str = ""
    calibration: str = ""
    heads: FileRef | None = None
    heads_fit: str = ""
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    base_dir: Path = field(default_factory=Path.cwd, compare=False)

    def __post_init__(self) -> None:
        if not self.levels:
            raise LibraryError(f"library {self.name!r} has no levels")
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise LibraryError(f"library {self.name!r} has duplicate level names: {names}")
        family = family_of(self.spec)
        if family.bn_statistics and self.bn_stats is None:
            raise LibraryError(f"library {self.name!r}: {family.name} libraries need a BN statistics file (bn_stats)")
        if not family.bn_statistics and self.bn_stats is not None:
            raise LibraryError(f"library {self.name!r}: {family.name} has no BN statistics, yet the library names a "
                               f"BN statistics file ({self.bn_stats.path})")

    # -- paths and files -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.base_dir / self.checkpoint.path

    @property
    def bn_stats_path(self) -> Path | None:
        """The per-level BN statistics file, None for a family without BN statistics."""
        return None if self.bn_stats is None else self.base_dir / self.bn_stats.path

    @property
    def heads_path(self) -> Path | None:
        """The per-level classifier heads file, None when the levels share the supernet's classifier."""
        return None if self.heads is None else self.base_dir / self.heads.path

    def verify_files(self) -> None:
        """Check that the checkpoint, BN statistics and heads files (those it has) exist and match their SHA-256."""
        files = [("checkpoint", self.checkpoint), ("BN statistics", self.bn_stats), ("classifier heads", self.heads)]
        for what, ref in files:
            if ref is None:
                continue
            path = self.base_dir / ref.path
            if not path.is_file():
                raise LibraryError(f"library {self.name!r}: {what} file not found: {path}")
            try:
                actual = sha256_file(path)
            except OSError as exc:
                raise LibraryError(f"library {self.name!r}: cannot read the {what} file {path}: {exc}") from exc
            if actual != ref.sha256:
                raise LibraryError(
                    f"library {self.name!r}: {what} file {path} has sha256 {actual}, the library expects "
                    f"{ref.sha256} (file replaced or corrupted?)"
                )

    def index_of(self, level: int | str) -> int:
        """Level index from an index or a level name; LibraryError if there is no such level."""
        return level_index(self.levels, level)

    # -- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        bn = {} if self.bn_stats is None else {"bn_stats": {**self.bn_stats.to_dict(), "calibration": self.calibration}}
        heads = {} if self.heads is None else {"heads": {**self.heads.to_dict(), "fit": self.heads_fit}}
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "created": self.created,
            "supernet": {"spec": self.spec.to_dict(), "checkpoint": self.checkpoint.to_dict()},
            **bn,
            **heads,
            "eval_set": self.eval_set,
            "levels": [lv.to_dict() for lv in self.levels],
        }

    @classmethod
    def from_dict(cls, data: Any, base_dir: Path, where: str = "library") -> SubnetLibrary:
        version = _get(data, "schema_version", int, where)
        if version != SCHEMA_VERSION:
            raise LibraryError(f"{where}: schema_version {version} is not supported (this code reads {SCHEMA_VERSION})")
        supernet = _get(data, "supernet", dict, where)
        try:
            spec = spec_from_dict(_get(supernet, "spec", dict, f"{where}.supernet"))
        except (TypeError, ValueError) as exc:
            raise LibraryError(f"{where}.supernet.spec: {exc}") from exc
        bn = _get(data, "bn_stats", dict, where, optional=True)
        heads = _get(data, "heads", dict, where, optional=True)
        levels = _get(data, "levels", list, where)
        return cls(
            name=_get(data, "name", str, where),
            spec=spec,
            checkpoint=FileRef.from_dict(_get(supernet, "checkpoint", dict, f"{where}.supernet"),
                                         f"{where}.supernet.checkpoint"),
            bn_stats=None if bn is None else FileRef.from_dict(bn, f"{where}.bn_stats"),
            calibration="" if bn is None else _get(bn, "calibration", str, f"{where}.bn_stats", optional=True) or "",
            heads=None if heads is None else FileRef.from_dict(heads, f"{where}.heads"),
            heads_fit="" if heads is None else _get(heads, "fit", str, f"{where}.heads", optional=True) or "",
            eval_set=_get(data, "eval_set", str, where, optional=True) or "",
            created=_get(data, "created", str, where, optional=True) or "",
            levels=[Level.from_dict(lv, spec, f"{where}.levels[{i}]") for i, lv in enumerate(levels)],
            base_dir=base_dir,
        )

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> SubnetLibrary:
        """Read and validate a library file; with ``verify`` also check the referenced files' SHA-256."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"subnet library file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LibraryError(f"{path} is not valid JSON: {exc}") from exc
        except OSError as exc:  # PermissionError and the like: the file exists but cannot be read
            raise LibraryError(f"cannot read subnet library file {path}: {exc}") from exc
        lib = cls.from_dict(data, path.resolve().parent, where=str(path))
        if verify:
            lib.verify_files()
        return lib

    def save(self, path: str | Path) -> Path:
        """Write the JSON file (atomically); later relative paths resolve against its folder."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        self.base_dir = path.resolve().parent
        return path


def default_library_path() -> Path:
    """The shipped library: ``$DYNOFA_LIBRARY``, else ``models/cifar10_mbv3/library.json`` of the package's
    share directory (:mod:`dynofa_ros.package_files`). FileNotFoundError naming the path it tried."""
    return env_path(LIBRARY_ENV) or shipped_library_path(DEFAULT_MODEL)


def shipped_library_path(model: str) -> Path:
    """The library of a shipped model (:data:`SHIPPED_MODELS`: ``mbv3``, ``vit``) in the package's share directory;
    FileNotFoundError naming the path it tried."""
    if model not in SHIPPED_MODELS:
        raise ValueError(f"unknown shipped model {model!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return package_file("models", SHIPPED_MODELS[model], "library.json")


def library_path(value: str | Path = "") -> Path:
    """What a ``library`` parameter or option names: '' the default (:func:`default_library_path`), a shipped
    model's name (``mbv3``, ``vit``) its library, anything else a library JSON path."""
    value = str(value)
    if not value:
        return default_library_path()
    return shipped_library_path(value) if value in SHIPPED_MODELS else Path(value)
