"""Latency profiling: direct batch-1 measurement of extracted subnets, one latency predictor per serving backend,
and a small regression model for GPU latency.

CPU profiles fix the thread count: ``cpu-1t`` (1 thread) and ``cpu-2t`` (2 threads). A profile's file holds one
predictor per backend. For the ofa_mbv3 family it is, for eager torch, the file's per-layer look-up table (LUT): the
key is a layer's shape (type, channels, kernel, stride, expand, SE, activation, input resolution), each distinct
layer is timed in isolation, and a subnet's prediction is the sum of its layers' entries plus one overhead term
fitted on directly measured subnets. The other backends', and for the elastic_vit family every backend's, are
:class:`LinearArchModel` fits on subnets those backends served, on features of the architecture that the family
decides (:data:`LATENCY_FEATURES`), so that a search constrains the latency of what will run.
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
from dynofa_ros.supernet.family import ELASTIC_VIT, OFA_MBV3, Arch, Spec, family_of, family_of_arch, spec_from_dict
from dynofa_ros.supernet.runners import serve_level
from dynofa_ros.supernet.serving import TORCH
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch, vit_mac_terms

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

    def predict(self, arch: Arch) -> float:
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


VIT_FEATURES = ("intercept", "encoder layers", "tokenizer-conv MMACs", "linear-projection MMACs",
                "attention-product MMACs")


def vit_arch_features(spec: ElasticViTSpec, arch: ViTArch) -> np.ndarray:
    """:data:`VIT_FEATURES` of ``arch``: 1, its encoder layers, and in millions the MACs of its tokenizer convs, of its
    q/k/v, output and MLP projections and of its QK^T and AV products (:func:`vit_mac_terms`; the head's are too few
    to tell)."""
    macs = vit_mac_terms(spec, arch)
    return np.array([1.0, arch.depth, macs.tokenizer / 1e6, macs.linear / 1e6, macs.attention / 1e6])


@dataclass(frozen=True)
class LatencyFeatures:
    """How a family's latency is predicted: :class:`LinearArchModel` features ``names`` (the first the intercept)
    and ``of(spec, arch)`` their values; ``layer_table``: eager torch by a per-layer :class:`LatencyLUT` instead."""

    names: tuple[str, ...]
    of: Callable[[Any, Any], np.ndarray]
    layer_table: bool


# On the vit-cifar10-cpu supernet (random weights, 1 thread, 42 fit and 20 held-out subnets timed 200 times in 20
# passes; 1.4-4.5 ms eager, 0.3-1.8 ms with ONNX Runtime) its model predicted the held-out subnets with 0.9-1.4 %
# (torch) and 1.5-2.2 % (ONNX Runtime) mean error over two seeds, against 7-8 % for total MACs alone and 1.0 % and
# 2.4 % for encoder layers + total MACs.
LATENCY_FEATURES: dict[str, LatencyFeatures] = {
    OFA_MBV3.name: LatencyFeatures(ARCH_FEATURES, arch_features, layer_table=True),
    ELASTIC_VIT.name: LatencyFeatures(VIT_FEATURES, vit_arch_features, layer_table=False),
}


@dataclass
class LinearArchModel:
    """Latency predictor of a backend that compiles the whole subnet (ONNX Runtime), or of every backend of a family
    without a per-layer table: a least-squares linear model ``t = coef . features(arch)`` on the family's
    :data:`LATENCY_FEATURES`, fitted on subnets that backend served.

    A per-layer table does not carry over to such a backend (its fused graph's per-operator overhead differs from
    the sum of layers run one by one), so these few features are fitted to whole-subnet timings instead. On the
    shipped CIFAR-10 supernet (ONNX Runtime, 1 thread, 62 random subnets) this model predicted held-out subnets
    with 5.3 % mean error (random splits, 40 fit and 20 held out), against 7.3 % for active blocks + total MACs
    and 5.6 % for a linear map of the torch LUT's prediction; unlike that map it needs no torch timing and
    carries over to another backend's timings alike. It needs about 20 fit subnets (12: 6.4 %).
    """

    spec: Spec
    backend: str
    coef: tuple[float, ...]
    method: str = ""
    error: dict[str, float] = field(default_factory=dict)

    kind: ClassVar[str] = "linear-arch"

    @property
    def features(self) -> LatencyFeatures:
        return LATENCY_FEATURES[self.spec.family]

    def predict(self, arch: Arch) -> float:
        """Predicted batch-1 latency of ``arch`` in seconds."""
        return float(self.features.of(self.spec, arch) @ np.asarray(self.coef))

    @staticmethod
    def check_fit_size(spec: Spec, n: int, backend: str) -> None:
        """ValueError when ``n`` measured subnets are too few to fit the model of ``backend`` for ``spec``."""
        needed = len(LATENCY_FEATURES[spec.family].names)
        if n < needed:
            raise ValueError(f"the {backend} latency model needs >= {needed} measured fit subnets, got {n} (profile "
                             f"with --fit {needed - 2} or more)")

    @classmethod
    def fit(cls, spec: Spec, backend: str, measured: Sequence[Measured]) -> LinearArchModel:
        """Least squares on the p50 latency of ``measured`` subnets served by ``backend``."""
        cls.check_fit_size(spec, len(measured), backend)
        features = LATENCY_FEATURES[spec.family]
        x = np.stack([features.of(spec, m.arch) for m in measured])
        coef = np.linalg.lstsq(x, np.array([m.timing.p50_s for m in measured]), rcond=None)[0]
        return cls(spec, backend, tuple(float(c) for c in coef),
                   f"linear model on {', '.join(features.names[1:])}; least squares on the p50 latency of "
                   f"{len(measured)} directly measured subnets")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "backend": self.backend, "features": list(self.features.names),
                "coef": list(self.coef), "method": self.method, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any], spec: Spec) -> LinearArchModel:
        """The model ``data`` describes, for subnets of ``spec``."""
        names = list(LATENCY_FEATURES[spec.family].names)
        if data.get("kind") != cls.kind or list(data.get("features", ())) != names:
            raise ValueError(f"unknown latency predictor {data.get('kind')!r} (features {data.get('features')}); "
                             f"expected {cls.kind!r} on {names}")
        return cls(spec, data["backend"], tuple(float(c) for c in data["coef"]), data.get("method", ""),
                   dict(data.get("error", {})))


# ------------------------------------------------------------------------------------------------ LUT


@dataclass
class LatencyLUT:
    """The latency predictors of one profile, per backend (:meth:`predictor` picks one): with ``entries`` (ofa_mbv3)
    the file is a per-layer latency table, the predictor of eager torch (``predict(arch)`` = sum of layer entries +
    overhead), and ``predictors`` holds the other backends'; without (elastic_vit) ``predictors`` holds every
    backend's. ``resolutions``: the input sizes profiled (by default those of the table's layers)."""

    spec: Spec
    profile: str
    threads: int
    device: str
    processor: str
    entries: dict[LayerKey, float]
    overhead_s: float = 0.0
    method: str = ""
    error: dict[str, float] = field(default_factory=dict)
    predictors: dict[str, LinearArchModel] = field(default_factory=dict)
    resolutions: tuple[int, ...] = ()

    backend: ClassVar[str] = TORCH
    kind: ClassVar[str] = "per-layer-lut"

    def __post_init__(self) -> None:
        self.resolutions = tuple(sorted(self.resolutions or {k.resolution for k in self.entries
                                                             if k.kind == "first_conv"}))

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends this file predicts the latency of."""
        return ((TORCH,) if self.entries else ()) + tuple(self.predictors)

    def predictor(self, backend: str) -> LatencyPredictor:
        """The latency predictor of ``backend``: this table for torch when it has entries, else the model stored
        with it; ValueError naming the command that adds a missing one."""
        if backend in self.predictors:
            return self.predictors[backend]
        if backend == TORCH and self.entries:
            return self
        raise ValueError(f"latency LUT {self.profile} has no {backend} predictor (only {', '.join(self.backends)}): "
                         f"add one with `dynofa profile --profiles {self.profile} --backends {TORCH} {backend}`")

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": LUT_FORMAT, "spec": self.spec.to_dict(), "profile": self.profile, "threads": self.threads,
            "device": self.device, "processor": self.processor, "overhead_s": self.overhead_s,
            "method": self.method, "error": self.error,
            "entries": [{"key": asdict(k), "mean_s": v} for k, v in sorted(self.entries.items())],
            "predictors": {b: p.to_dict() for b, p in self.predictors.items()}, "resolutions": list(self.resolutions),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyLUT:
        if data.get("format") != LUT_FORMAT:
            raise ValueError(f"not a latency LUT (format {data.get('format')!r}, expected {LUT_FORMAT!r})")
        try:
            entries = {LayerKey(**e["key"]): float(e["mean_s"]) for e in data["entries"]}
            spec = spec_from_dict(data["spec"])
            predictors = {b: LinearArchModel.from_dict(p, spec) for b, p in data.get("predictors", {}).items()}
            return cls(spec, data["profile"], int(data["threads"]), data["device"], data["processor"], entries,
                       float(data["overhead_s"]), data.get("method", ""), dict(data.get("error", {})), predictors,
                       tuple(data.get("resolutions", ())))
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


def subnet_call(supernet: nn.Module, arch: Arch, backend: str = TORCH, threads: int = 1,
                export_dir: Path | None = None) -> Callable[[], object]:
    """A batch-1 forward pass of the extracted sub-network ``arch`` on a fixed random input, served by
    ``backend`` (its runner built with ``threads`` threads, exports in ``export_dir``, default the user cache);
    RuntimeError when the backend cannot serve it."""
    net, x = family_of_arch(arch).extract(supernet, arch), torch.randn(1, 3, arch.resolution, arch.resolution)
    if backend == TORCH:
        return lambda: net(x)
    # timed, not served: weights and BN statistics here are whatever the caller's are, so nothing to check
    runner = serve_level(net, arch.resolution, backend, torch.device("cpu"), threads, f"subnet {arch}", export_dir,
                         check=False)
    if runner.backend != backend:
        raise RuntimeError(f"backend {backend} cannot serve subnet {arch} (see the warning above): not timed")
    return lambda: runner(x)


def measure_subnets(supernet: nn.Module, archs: Sequence[Arch], threads: int, warmup: int = 10,
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


def _unit_call(supernet: nn.Module, layout: SupernetLayout, key: LayerKey) -> Callable[[], object]:
    module, x = build_unit(supernet, layout, key), torch.randn(1, key.in_ch, key.resolution, key.resolution)
    return lambda: module(x)


def build_lut(supernet: nn.Module, spec: Spec, profile: str, keys: Sequence[LayerKey],
              warmup: int = 10, repeats: int = 30, rounds: int = 3, progress: bool = True,
              extra: Sequence[Callable[[], object]] = (), resolutions: Sequence[int] = ()
              ) -> tuple[LatencyLUT, list[Timing]]:
    """Time each unit in ``keys`` (none for a family without a per-layer table) in isolation (batch 1) and tabulate
    its interquartile mean; the file records ``resolutions`` (default: the units').

    ``extra`` calls (subnets served by some backend, :func:`subnet_call`) are timed interleaved with the units
    (same passes, same repeats), so their direct measurements (returned in order) can fit and check predictors
    under the same load. The table's overhead starts at 0; fit it with :func:`fit_overhead`.
    """
    threads = cpu_threads(profile)
    calls = [_unit_call(supernet, layout_for(spec), key) for key in keys] + list(extra)
    samples = time_interleaved(calls, threads, warmup, repeats, rounds, f"LUT {profile}", progress)
    entries = {key: trimmed_mean(s) for key, s in zip(keys, samples, strict=False)}
    timings = [Timing.of(s, warmup, rounds) for s in samples[len(keys):]]
    lut = LatencyLUT(spec, profile, threads, "cpu", processor_name(), entries, 0.0,
                     lut_method(warmup, repeats, rounds) if keys else "", resolutions=tuple(resolutions))
    return lut, timings


@dataclass(frozen=True)
class Measured:
    """A directly measured subnet latency under one profile."""

    arch: Arch
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


def sample_archs(spec: Spec, n: int, rng: random.Random, resolutions: Sequence[int] | None = None) -> list[Arch]:
    """``n`` distinct random canonical subnets, optionally restricted to ``resolutions``."""
    res = list(resolutions or spec.resolutions)
    family = family_of(spec)
    seen: dict[Arch, None] = {}
    for _ in range(100 * n):
        if len(seen) == n:
            break
        a = family.sample(spec, rng)
        seen[replace(a, resolution=rng.choice(res)).canonical(spec)] = None
    return list(seen)


def split_archs(spec: Spec, resolutions: Sequence[int], n_fit: int, n_holdout: int,
                rng: random.Random) -> tuple[list[Arch], list[Arch]]:
    """Subnets to fit predictors on (the smallest and largest at ``resolutions`` and ``n_fit`` random ones) and up
    to ``n_holdout`` more random ones to check them on, none of which is a fit subnet."""
    family = family_of(spec)
    ends = [replace(family.smallest(spec), resolution=min(resolutions)),
            replace(family.largest(spec), resolution=max(resolutions))]
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


def profile_luts(supernet: nn.Module, spec: Spec, profiles: Sequence[str], resolutions: Sequence[int],
                 *, warmup: int, repeats: int, rounds: int, n_fit: int, n_holdout: int, seed: int,
                 backends: Sequence[str] = (TORCH,)) -> ProfileRun:
    """One LUT file per CPU profile for the subnets at ``resolutions`` (all when empty): for a family with a
    per-layer table (:data:`LATENCY_FEATURES`) every layer of the search space timed for torch and a
    :class:`LinearArchModel` for each other backend of ``backends``, else such a model for every backend (torch is
    always profiled). Interleaved with the layers, each backend serves the smallest and largest subnet and ``n_fit``
    random ones (they fit its predictor: the LUT's overhead, the model's coefficients) and ``n_holdout`` others (its
    error is measured on them; on the fit subnets when there are none)."""
    resolutions = list(resolutions or spec.resolutions)
    backends = list(dict.fromkeys([TORCH, *backends]))
    table = LATENCY_FEATURES[spec.family].layer_table
    fit_archs, held_out = split_archs(spec, resolutions, n_fit, n_holdout, random.Random(seed))
    for b in backends[1:] if table else backends:
        LinearArchModel.check_fit_size(spec, len(fit_archs), b)
    archs = fit_archs + held_out
    keys = layout_for(spec).all_layer_keys(spec, resolutions) if table else []
    result = ProfileRun([], {"processor": processor_name(), "resolutions": resolutions, "profiles": {}})
    with tempfile.TemporaryDirectory() as exports:  # one export per subnet, for every profile's sessions
        for profile in profiles:
            threads = cpu_threads(profile)
            calls = [subnet_call(supernet, a, b, threads, Path(exports)) for b in backends for a in archs]
            lut, timings = build_lut(supernet, spec, profile, keys, warmup, repeats, rounds, extra=calls,
                                     resolutions=resolutions)
            report: dict[str, Any] = {"threads": threads, "n_layers": len(lut.entries), "backends": {}}
            for i, backend in enumerate(backends):
                measured = [Measured(a, profile, t) for a, t in
                            zip(archs, timings[i * len(archs):(i + 1) * len(archs)], strict=True)]
                fit, check = measured[:len(fit_archs)], measured[len(fit_archs):]
                if backend == TORCH and table:
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
