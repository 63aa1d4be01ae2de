"""Latency profiling: direct batch-1 measurement of extracted subnets, one latency predictor per serving backend,
and a small regression model for GPU latency.

CPU profiles fix the thread count: ``cpu-1t`` (1 thread) and ``cpu-2t`` (2 threads). A profile's file is its
per-layer look-up table (LUT), the predictor of eager torch: the key is a layer's shape (type, channels, kernel,
stride, expand, SE, activation, input resolution), each distinct layer is timed in isolation, and a subnet's
prediction is the sum of its layers' entries plus one overhead term fitted on directly measured subnets. The file
also holds the predictors of the other backends (:class:`LinearArchModel`, fitted on subnets those backends
served), so that a search constrains the latency of what will run.
"""

from __future__ import annotations

import copy
import json
import random
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from ofa.utils import make_divisible
from ofa.utils.layers import ResidualBlock
from torch import nn

from dynofa_ros.offline.timing import Timing, processor_name, time_interleaved
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.runners import serve_level
from dynofa_ros.supernet.runtime import extract_subnet
from dynofa_ros.supernet.serving import TORCH
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet

CPU_PROFILES: dict[str, int] = {"cpu-1t": 1, "cpu-2t": 2}
LUT_FORMAT = "dynofa-latency-lut/1"


def cpu_threads(profile: str) -> int:
    """Thread count of a CPU profile name (``cpu-<n>t``)."""
    if profile in CPU_PROFILES:
        return CPU_PROFILES[profile]
    if profile.startswith("cpu-") and profile.endswith("t") and profile[4:-1].isdigit() and int(profile[4:-1]) > 0:
        return int(profile[4:-1])
    raise ValueError(f"unknown CPU profile {profile!r}; use cpu-<threads>t, e.g. {sorted(CPU_PROFILES)}")


# --------------------------------------------------------------------------------------------- layers


@dataclass(frozen=True, order=True)
class LayerKey:
    """Shape of one timed unit of a MobileNetV3 subnet.

    ``kind`` is ``first_conv``, ``mbconv`` (a residual block, the fixed first block included),
    ``final_expand`` (1x1 conv) or ``head`` (global pooling + feature-mix 1x1 + classifier);
    ``resolution`` is the unit's input feature-map size.
    """

    kind: str
    in_ch: int
    out_ch: int
    kernel: int
    stride: int
    expand: int
    se: bool
    act: str
    resolution: int

    @property
    def name(self) -> str:
        return (f"{self.kind}-i{self.in_ch}-o{self.out_ch}-k{self.kernel}-s{self.stride}-e{self.expand}"
                f"-se{int(self.se)}-{self.act}-r{self.resolution}")


def _out_size(size: int, stride: int) -> int:
    """Output size of an odd-kernel, same-padded convolution."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class SupernetLayout:
    """The fixed shapes of a supernet's layers; ``layer_keys(arch)`` fills in an arch's choices.

    ``blocks`` holds one template per elastic block (kernel, expand and resolution left at 0).
    """

    first_conv: LayerKey
    first_block: LayerKey
    blocks: tuple[LayerKey, ...]
    final_expand: LayerKey
    head: LayerKey
    depth_max: int

    @classmethod
    def from_supernet(cls, supernet: nn.Module) -> SupernetLayout:
        fc = supernet.first_conv
        fb = supernet.blocks[0].conv
        blocks = tuple(
            LayerKey("mbconv", max(b.conv.in_channel_list), max(b.conv.out_channel_list), 0, b.conv.stride, 0,
                     bool(b.conv.use_se), b.conv.act_func, 0)
            for b in supernet.blocks[1:]
        )
        fe = supernet.final_expand_layer
        mix = supernet.feature_mix_layer
        return cls(
            first_conv=LayerKey("first_conv", fc.in_channels, fc.out_channels, fc.kernel_size, fc.stride, 1,
                                False, fc.act_func, 0),
            first_block=LayerKey("mbconv", fb.in_channels, fb.out_channels, fb.kernel_size, fb.stride,
                                 fb.expand_ratio, bool(fb.use_se), fb.act_func, 0),
            blocks=blocks,
            final_expand=LayerKey("final_expand", fe.in_channels, fe.out_channels, 1, 1, 1, False, fe.act_func, 0),
            head=LayerKey("head", mix.in_channels, supernet.classifier.out_features, 1, 1, 1, False,
                          mix.act_func, 0),
            depth_max=len(supernet.block_group_info[0]),
        )

    def layer_keys(self, arch: SubnetArch) -> list[LayerKey]:
        """The timed units ``arch`` runs, in order, with their input resolutions."""
        size = arch.resolution
        keys = [replace(self.first_conv, resolution=size)]
        size = _out_size(size, self.first_conv.stride)
        keys.append(replace(self.first_block, resolution=size))
        size = _out_size(size, self.first_block.stride)
        for stage, depth in enumerate(arch.d):
            for i in range(stage * self.depth_max, stage * self.depth_max + depth):
                keys.append(replace(self.blocks[i], kernel=arch.ks[i], expand=arch.e[i], resolution=size))
                size = _out_size(size, self.blocks[i].stride)
        keys.append(replace(self.final_expand, resolution=size))
        keys.append(replace(self.head, resolution=size))
        return keys

    def all_layer_keys(self, spec: SupernetSpec, resolutions: Sequence[int] | None = None) -> list[LayerKey]:
        """Every distinct unit of the search space (restricted to ``resolutions`` if given)."""
        keys: set[LayerKey] = set()
        n = len(self.blocks)
        for res in resolutions or spec.resolutions:
            for k in spec.ks_list:
                for e in spec.expand_list:
                    keys.update(self.layer_keys(SubnetArch((k,) * n, (e,) * n, (self.depth_max,) * 5, res)))
        return sorted(keys)


@lru_cache(maxsize=4)
def _layout_and_supernet(spec: SupernetSpec) -> tuple[SupernetLayout, nn.Module]:
    supernet = build_supernet(spec).eval()
    return SupernetLayout.from_supernet(supernet), supernet


def layout_for(spec: SupernetSpec) -> SupernetLayout:
    """The layout of ``spec``'s supernet (built once per spec and cached)."""
    return _layout_and_supernet(spec)[0]


class _Head(nn.Module):
    """Global average pooling, feature-mix layer and classifier, as MobileNetV3.forward runs them."""

    def __init__(self, feature_mix: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.feature_mix = feature_mix
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        return self.classifier(self.feature_mix(x).view(x.size(0), -1))


def build_unit(supernet: nn.Module, layout: SupernetLayout, key: LayerKey) -> nn.Module:
    """A standalone eval-mode module computing the unit ``key`` (weights taken from ``supernet``)."""
    if key.kind == "first_conv":
        module = copy.deepcopy(supernet.first_conv)
    elif key.kind == "final_expand":
        module = copy.deepcopy(supernet.final_expand_layer)
    elif key.kind == "head":
        module = _Head(copy.deepcopy(supernet.feature_mix_layer), copy.deepcopy(supernet.classifier))
    elif key.kind == "mbconv" and replace(key, resolution=0) == layout.first_block:
        module = copy.deepcopy(supernet.blocks[0])
    elif key.kind == "mbconv":
        template = replace(key, kernel=0, expand=0, resolution=0)
        try:
            idx = layout.blocks.index(template)
        except ValueError:
            raise ValueError(f"layer {key.name} does not occur in this supernet") from None
        block = supernet.blocks[idx + 1]
        block.conv.active_kernel_size = key.kernel
        block.conv.active_expand_ratio = key.expand
        module = ResidualBlock(block.conv.get_active_subnet(key.in_ch, preserve_weight=True),
                               copy.deepcopy(block.shortcut))
    else:
        raise ValueError(f"unknown layer kind {key.kind!r}")
    return module.eval()


# ----------------------------------------------------------------------------------------- predictors


class LatencyPredictor(Protocol):
    """Batch-1 latency of a subnet served by ``backend``, predicted from its architecture; ``error`` is that of
    the predictions on directly measured subnets (:func:`prediction_error`), ``kind`` names the predictor and
    ``method`` says how it was built."""

    backend: str
    kind: str
    method: str
    error: dict[str, float]

    def predict(self, arch: SubnetArch) -> float:
        """Predicted batch-1 latency of ``arch`` in seconds."""
        ...

    def to_dict(self) -> dict[str, Any]: ...


ARCH_FEATURES = ("intercept", "residual blocks", "dense-conv MMACs", "depthwise-conv MMACs",
                 "expanded activation M-elements")


def unit_features(key: LayerKey) -> np.ndarray:
    """:data:`ARCH_FEATURES` of one unit but the intercept: residual blocks (1 for an ``mbconv``), MACs of its
    dense convolutions (stem, 1x1 expand and project, final 1x1) and of its depthwise one, in millions, and the
    elements of its expanded feature maps, in millions. The head (pooled features, the same for every subnet)
    and the squeeze-and-excitation convolutions (on pooled features too) count nothing."""
    size, out = key.resolution, _out_size(key.resolution, key.stride)
    if key.kind == "first_conv":
        return np.array([0.0, key.in_ch * key.out_ch * key.kernel ** 2 * out ** 2 / 1e6, 0.0, 0.0])
    if key.kind == "final_expand":
        return np.array([0.0, key.in_ch * key.out_ch * size ** 2 / 1e6, 0.0, 0.0])
    if key.kind == "mbconv":
        mid = make_divisible(round(key.in_ch * key.expand), 8) if key.expand != 1 else key.in_ch
        expand = key.in_ch * mid * size ** 2 if key.expand != 1 else 0
        return np.array([1.0, (expand + mid * key.out_ch * out ** 2) / 1e6, mid * key.kernel ** 2 * out ** 2 / 1e6,
                         mid * (size ** 2 + out ** 2) / 1e6])
    return np.zeros(4)


def arch_features(spec: SupernetSpec, arch: SubnetArch) -> np.ndarray:
    """:data:`ARCH_FEATURES` of ``arch``: 1 and the sums of its units' :func:`unit_features`."""
    return np.concatenate([[1.0], sum(unit_features(k) for k in layout_for(spec).layer_keys(arch))])


@dataclass
class LinearArchModel:
    """Latency predictor of a backend that compiles the whole subnet (ONNX Runtime): a least-squares linear model
    ``t = coef . arch_features(arch)`` (:data:`ARCH_FEATURES`) fitted on subnets that backend served.

    A per-layer table does not carry over to such a backend (its fused graph's per-operator overhead differs from
    the sum of layers run one by one), so these few features are fitted to whole-subnet timings instead. On the
    shipped CIFAR-10 supernet (ONNX Runtime, 1 thread, 62 random subnets) this model predicted held-out subnets
    with 5.3 % mean error (random splits, 40 fit and 20 held out), against 7.3 % for active blocks + total MACs
    and 5.6 % for a linear map of the torch LUT's prediction; unlike that map it needs no torch timing and
    carries over to another backend's timings alike. It needs about 20 fit subnets (12: 6.4 %).
    """

    spec: SupernetSpec
    backend: str
    coef: tuple[float, ...]
    method: str = ""
    error: dict[str, float] = field(default_factory=dict)

    kind: ClassVar[str] = "linear-arch"

    def predict(self, arch: SubnetArch) -> float:
        """Predicted batch-1 latency of ``arch`` in seconds."""
        return float(arch_features(self.spec, arch) @ np.asarray(self.coef))

    @staticmethod
    def check_fit_size(n: int, backend: str) -> None:
        """ValueError when ``n`` measured subnets are too few to fit the model of ``backend``."""
        if n < len(ARCH_FEATURES):
            raise ValueError(f"the {backend} latency model needs >= {len(ARCH_FEATURES)} measured fit subnets, "
                             f"got {n} (profile with --fit {len(ARCH_FEATURES) - 2} or more)")

    @classmethod
    def fit(cls, spec: SupernetSpec, backend: str, measured: Sequence[Measured]) -> LinearArchModel:
        """Least squares on the p50 latency of ``measured`` subnets served by ``backend``."""
        cls.check_fit_size(len(measured), backend)
        x = np.stack([arch_features(spec, m.arch) for m in measured])
        coef = np.linalg.lstsq(x, np.array([m.timing.p50_s for m in measured]), rcond=None)[0]
        return cls(spec, backend, tuple(float(c) for c in coef),
                   f"linear model on {', '.join(ARCH_FEATURES[1:])}; least squares on the p50 latency of "
                   f"{len(measured)} directly measured subnets")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.backend, "features": list(ARCH_FEATURES), "coef": list(self.coef),
                "method": self.method, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any], spec: SupernetSpec) -> LinearArchModel:
        """The model ``data`` describes, for subnets of ``spec``."""
        if data.get("kind") != cls.kind or list(data.get("features", ())) != list(ARCH_FEATURES):
            raise ValueError(f"unknown latency predictor {data.get('kind')!r} (features {data.get('features')}); "
                             f"expected {cls.kind!r} on {list(ARCH_FEATURES)}")
        return cls(spec, data["backend"], tuple(float(c) for c in data["coef"]), data.get("method", ""),
                   dict(data.get("error", {})))


# ------------------------------------------------------------------------------------------------ LUT


@dataclass
class LatencyLUT:
    """Per-layer latency table of one profile, the predictor of eager torch: ``predict(arch)`` = sum of layer
    entries + overhead; ``predictors`` holds the other backends' (:meth:`predictor` picks one)."""

    spec: SupernetSpec
    profile: str
    threads: int
    device: str
    processor: str
    entries: dict[LayerKey, float]
    overhead_s: float = 0.0
    method: str = ""
    error: dict[str, float] = field(default_factory=dict)
    predictors: dict[str, LinearArchModel] = field(default_factory=dict)

    backend: ClassVar[str] = TORCH
    kind: ClassVar[str] = "per-layer-lut"

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends this file predicts the latency of."""
        return (TORCH, *self.predictors)

    def predictor(self, backend: str) -> LatencyPredictor:
        """The latency predictor of ``backend``: this table for torch, else the model stored with it; ValueError
        naming the command that adds a missing one."""
        if backend == TORCH:
            return self
        if backend not in self.predictors:
            raise ValueError(f"latency LUT {self.profile} has no {backend} predictor (only {', '.join(self.backends)}):"
                             f" add one with `dynofa profile --profiles {self.profile} --backends {TORCH} {backend}`")
        return self.predictors[backend]

    def layer_latencies(self, arch: SubnetArch) -> list[tuple[LayerKey, float]]:
        """Each unit of ``arch`` with its table entry (KeyError naming a missing layer)."""
        out = []
        for key in layout_for(self.spec).layer_keys(arch):
            if key not in self.entries:
                raise KeyError(f"latency LUT {self.profile} has no entry for layer {key.name} "
                               f"(resolution {arch.resolution} not profiled?)")
            out.append((key, self.entries[key]))
        return out

    def predict(self, arch: SubnetArch) -> float:
        """Predicted batch-1 latency of ``arch`` in seconds."""
        return sum(v for _, v in self.layer_latencies(arch)) + self.overhead_s

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Input resolutions the table was built for."""
        return tuple(sorted({k.resolution for k in self.entries if k.kind == "first_conv"}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT, "spec": self.spec.to_dict(), "profile": self.profile, "threads": self.threads,
            "device": self.device, "processor": self.processor, "overhead_s": self.overhead_s,
            "method": self.method, "error": self.error,
            "entries": [{"key": asdict(k), "mean_s": v} for k, v in sorted(self.entries.items())],
            "predictors": {b: p.to_dict() for b, p in self.predictors.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyLUT:
        if data.get("format") != LUT_FORMAT:
            raise ValueError(f"not a latency LUT (format {data.get('format')!r}, expected {LUT_FORMAT!r})")
        try:
            entries = {LayerKey(**e["key"]): float(e["mean_s"]) for e in data["entries"]}
            spec = SupernetSpec.from_dict(data["spec"])
            predictors = {b: LinearArchModel.from_dict(p, spec) for b, p in data.get("predictors", {}).items()}
            return cls(spec, data["profile"], int(data["threads"]), data["device"], data["processor"], entries,
                       float(data["overhead_s"]), data.get("method", ""), dict(data.get("error", {})), predictors)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed latency LUT: {exc}") from exc

    def save(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path | str) -> LatencyLUT:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"latency LUT not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"latency LUT {path} is not valid JSON: {exc}") from exc


def trimmed_mean(samples: np.ndarray, trim: float = 0.25) -> float:
    """Mean of ``samples`` without the lowest and highest ``trim`` fraction (default: the interquartile
    mean, robust to the preemptions of a shared machine)."""
    s = np.sort(np.asarray(samples, dtype=float))
    cut = int(len(s) * trim)
    return float(s[cut: len(s) - cut].mean())


def subnet_call(supernet: nn.Module, arch: SubnetArch, backend: str = TORCH, threads: int = 1,
                export_dir: Path | None = None) -> Callable[[], object]:
    """A batch-1 forward pass of the extracted sub-network ``arch`` on a fixed random input, served by
    ``backend`` (its runner built with ``threads`` threads, exports in ``export_dir``, default the user cache);
    RuntimeError when the backend cannot serve it."""
    net, x = extract_subnet(supernet, arch), torch.randn(1, 3, arch.resolution, arch.resolution)
    if backend == TORCH:
        return lambda: net(x)
    # timed, not served: weights and BN statistics here are whatever the caller's are, so nothing to check
    runner = serve_level(net, arch.resolution, backend, torch.device("cpu"), threads, f"subnet {arch}", export_dir,
                         check=False)
    if runner.backend != backend:
        raise RuntimeError(f"backend {backend} cannot serve subnet {arch} (see the warning above): not timed")
    return lambda: runner(x)


def measure_subnets(supernet: nn.Module, archs: Sequence[SubnetArch], threads: int, warmup: int = 10,
                    repeats: int = 50, rounds: int = 5, progress: bool = True, backend: str = TORCH
                    ) -> list[Timing]:
    """Direct batch-1 latency of several extracted subnets served by ``backend``, timed interleaved (see
    :func:`time_interleaved`)."""
    with tempfile.TemporaryDirectory() as exports:  # the sessions hold their graphs: the files can go after
        calls = [subnet_call(supernet, a, backend, threads, Path(exports)) for a in archs]
    samples = time_interleaved(calls, threads, warmup, repeats, rounds, f"measure {len(archs)} subnets", progress)
    return [Timing.of(s, warmup, rounds) for s in samples]


def lut_method(warmup: int, repeats: int, rounds: int) -> str:
    return (f"per-layer LUT: each distinct layer timed in isolation, batch 1, {warmup} warm-up, "
            f"interquartile mean of {repeats} in {rounds} interleaved passes; + fitted overhead")


def build_lut(supernet: nn.Module, spec: SupernetSpec, profile: str, keys: Sequence[LayerKey],
              warmup: int = 10, repeats: int = 30, rounds: int = 3, progress: bool = True,
              extra: Sequence[Callable[[], object]] = ()) -> tuple[LatencyLUT, list[Timing]]:
    """Time each unit in ``keys`` in isolation (batch 1) and tabulate its interquartile mean.

    ``extra`` calls (subnets served by some backend, :func:`subnet_call`) are timed interleaved with the units
    (same passes, same repeats), so their direct measurements (returned in order) can fit and check predictors
    under the same load. The table's overhead starts at 0; fit it with :func:`fit_overhead`.
    """
    threads = cpu_threads(profile)
    layout = layout_for(spec)
    calls: list[Callable[[], object]] = []
    for key in keys:
        module, x = build_unit(supernet, layout, key), torch.randn(1, key.in_ch, key.resolution, key.resolution)
        calls.append(lambda m=module, x=x: m(x))
    calls += extra
    samples = time_interleaved(calls, threads, warmup, repeats, rounds, f"LUT {profile}", progress)
    entries = {key: trimmed_mean(s) for key, s in zip(keys, samples, strict=False)}
    timings = [Timing.of(s, warmup, rounds) for s in samples[len(keys):]]
    lut = LatencyLUT(spec, profile, threads, "cpu", processor_name(), entries, 0.0,
                     lut_method(warmup, repeats, rounds))
    return lut, timings


@dataclass(frozen=True)
class Measured:
    """A directly measured subnet latency under one profile."""

    arch: SubnetArch
    profile: str
    timing: Timing


def fit_overhead(lut: LatencyLUT, measured: Sequence[Measured]) -> float:
    """Set and return the LUT's overhead: the median of (measured p50 - sum of layer entries)."""
    if not measured:
        raise ValueError("need at least one measured subnet to fit the LUT overhead")
    lut.overhead_s = float(statistics.median(
        m.timing.p50_s - sum(v for _, v in lut.layer_latencies(m.arch)) for m in measured))
    return lut.overhead_s


def prediction_error(predictor: LatencyPredictor, measured: Sequence[Measured]) -> dict[str, float]:
    """Mean/max absolute percentage error and mean signed error of ``predictor`` against measured p50."""
    if not measured:
        raise ValueError("need at least one measured subnet to compute the prediction error")
    ape = [abs(predictor.predict(m.arch) - m.timing.p50_s) / m.timing.p50_s for m in measured]
    bias = [(predictor.predict(m.arch) - m.timing.p50_s) / m.timing.p50_s for m in measured]
    return {"mape": float(np.mean(ape)), "max_ape": float(np.max(ape)), "bias": float(np.mean(bias)),
            "n": float(len(measured))}


def sample_archs(spec: SupernetSpec, n: int, rng: random.Random,
                 resolutions: Sequence[int] | None = None) -> list[SubnetArch]:
    """``n`` distinct random canonical subnets, optionally restricted to ``resolutions``."""
    res = list(resolutions or spec.resolutions)
    seen: dict[SubnetArch, None] = {}
    for _ in range(100 * n):
        if len(seen) == n:
            break
        a = SubnetArch.sample(spec, rng)
        seen[replace(a, resolution=rng.choice(res)).canonical(spec)] = None
    return list(seen)


def split_archs(spec: SupernetSpec, resolutions: Sequence[int], n_fit: int, n_holdout: int,
                rng: random.Random) -> tuple[list[SubnetArch], list[SubnetArch]]:
    """Subnets to fit predictors on (the smallest and largest at ``resolutions`` and ``n_fit`` random ones) and up
    to ``n_holdout`` more random ones to check them on, none of which is a fit subnet."""
    ends = [replace(SubnetArch.smallest(spec), resolution=min(resolutions)),
            replace(SubnetArch.largest(spec), resolution=max(resolutions))]
    fit = list(dict.fromkeys(ends))
    sampled = [a for a in sample_archs(spec, n_fit + n_holdout + len(fit), rng, resolutions) if a not in fit]
    return fit + sampled[:n_fit], sampled[n_fit:n_fit + n_holdout]


# ------------------------------------------------------------------------------------ GPU regression


@dataclass
class LinearLatencyModel:
    """Least-squares latency model ``t = c0 + c1 * active blocks + c2 * MMACs`` (for unmeasured archs)."""

    coef: tuple[float, float, float]
    error: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def features(n_blocks: int, macs: float) -> np.ndarray:
        return np.array([1.0, float(n_blocks), macs / 1e6])

    def predict(self, n_blocks: int, macs: float) -> float:
        return float(self.features(n_blocks, macs) @ np.array(self.coef))

    @classmethod
    def fit(cls, n_blocks: Sequence[int], macs: Sequence[float], latency_s: Sequence[float],
            holdout: float = 0.25, seed: int = 0) -> LinearLatencyModel:
        """Fit on all points; ``error`` holds the MAPE of a fit on a random (1 - holdout) part."""
        if len(latency_s) < 4 or not len(n_blocks) == len(macs) == len(latency_s):
            raise ValueError(f"need >= 4 matching (blocks, macs, latency) triples, got {len(latency_s)}")
        x = np.stack([cls.features(b, m) for b, m in zip(n_blocks, macs, strict=True)])
        y = np.asarray(latency_s, dtype=float)
        order = np.random.default_rng(seed).permutation(len(y))
        n_test = max(1, int(len(y) * holdout))
        test, train = order[:n_test], order[n_test:]
        coef_train = np.linalg.lstsq(x[train], y[train], rcond=None)[0]
        mape = float(np.mean(np.abs(x[test] @ coef_train - y[test]) / y[test]))
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        return cls((float(coef[0]), float(coef[1]), float(coef[2])),
                   {"holdout_mape": mape, "n_fit": float(len(train)), "n_holdout": float(n_test)})


# ------------------------------------------------------------------------------------------- profiling


@dataclass
class ProfileRun:
    """The LUT of each profile, in order, with the predictors of the other backends (fitted, error measured),
    and the report of the run (``profile_report.json``: per profile its layers and overhead, and per backend
    its predictor, error and every directly measured subnet)."""

    luts: list[LatencyLUT]
    report: dict[str, Any]


def profile_luts(supernet: nn.Module, spec: SupernetSpec, profiles: Sequence[str], resolutions: Sequence[int],
                 *, warmup: int, repeats: int, rounds: int, n_fit: int, n_holdout: int, seed: int,
                 backends: Sequence[str] = (TORCH,)) -> ProfileRun:
    """One LUT per CPU profile over every layer of the search space at ``resolutions`` (all when empty), and a
    :class:`LinearArchModel` for each other backend of ``backends`` (torch is always profiled). Interleaved with
    the layers, each backend serves the smallest and largest subnet and ``n_fit`` random ones (they fit its
    predictor: the LUT's overhead, the model's coefficients) and ``n_holdout`` others (its error is measured on
    them; on the fit subnets when there are none)."""
    resolutions = list(resolutions or spec.resolutions)
    backends = list(dict.fromkeys([TORCH, *backends]))
    fit_archs, held_out = split_archs(spec, resolutions, n_fit, n_holdout, random.Random(seed))
    for b in backends[1:]:
        LinearArchModel.check_fit_size(len(fit_archs), b)
    archs = fit_archs + held_out
    keys = layout_for(spec).all_layer_keys(spec, resolutions)
    result = ProfileRun([], {"processor": processor_name(), "resolutions": resolutions, "profiles": {}})
    with tempfile.TemporaryDirectory() as exports:  # one export per subnet, for every profile's sessions
        for profile in profiles:
            threads = cpu_threads(profile)
            calls = [subnet_call(supernet, a, b, threads, Path(exports)) for b in backends for a in archs]
            lut, timings = build_lut(supernet, spec, profile, keys, warmup, repeats, rounds, extra=calls)
            report: dict[str, Any] = {"threads": threads, "n_layers": len(lut.entries), "backends": {}}
            for i, backend in enumerate(backends):
                measured = [Measured(a, profile, t) for a, t in
                            zip(archs, timings[i * len(archs):(i + 1) * len(archs)], strict=True)]
                fit, check = measured[:len(fit_archs)], measured[len(fit_archs):]
                if backend == TORCH:
                    fit_overhead(lut, fit)
                    predictor: LatencyPredictor = lut
                else:
                    predictor = lut.predictors[backend] = LinearArchModel.fit(spec, backend, fit)
                predictor.error = prediction_error(predictor, check or fit)
                report["backends"][backend] = {
                    "predictor": predictor.kind, "method": predictor.method, "error": predictor.error,
                    "error_on": "held-out" if check else "fit (no held-out subnets)",
                    "measured": [{"set": "fit" if j < len(fit) else "held-out", "arch": m.arch.to_dict(),
                                  "p50_s": m.timing.p50_s, "p90_s": m.timing.p90_s,
                                  "predicted_s": predictor.predict(m.arch)} for j, m in enumerate(measured)],
                }
            report["overhead_s"] = lut.overhead_s
            result.luts.append(lut)
            result.report["profiles"][profile] = report
    return result
