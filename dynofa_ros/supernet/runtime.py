"""Live dynamic network: switch levels between frames (architecture + BN statistics) and predict.

The supernet is of any family (:mod:`.family`: ``ofa``'s MobileNetV3, the elastic ViT); what differs between
families (extracting a level, switching one in place, BN statistics or none) is its family record's. Two modes:

- ``"cache"`` (default): every level is extracted once at load time with its family's ``extract`` (``ofa``'s
  ``get_active_subnet(preserve_weight=True)``) with its BN statistics (and classifier head, when the
  library has per-level heads) baked in, and handed to its serving backend (:mod:`.serving`: eager torch,
  ONNX Runtime or a CUDA graph, built and checked at load time by :mod:`.runners`); a switch is a pointer
  swap; inference runs a plain static network (faster at batch 1, more memory: one copy per level).
- ``"inplace"``: one supernet; a switch replays the family's precomputed architecture switch and copies the
  level's BN statistics (and head), when it has any, into the running buffers with one precomputed foreach copy
  (least memory).

Frame safety: ``request_level`` (any thread) only records the wish; the next ``run``/``predict``
applies it before its forward pass, under the same lock as the forward pass, so a frame always runs
entirely on one level and no frame is dropped.

Pipelining: :meth:`DynamicNetwork.prepare` preprocesses a frame ahead (on a receiving thread, while the frame
before it runs) at the resolution of the level it is expected to run on; :meth:`DynamicNetwork.classify_prepared`
runs it, preprocessing it again only when a switch in between changed the resolution.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dynofa_ros.supernet.bn import BnCopyPlan, BnStats, active_bn_channels, apply_bn_stats, load_bn_stats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.family import Arch, Family, Spec, family_of, family_of_arch
from dynofa_ros.supernet.heads import LevelHead, apply_head, check_head, head_pairs, load_heads
from dynofa_ros.supernet.library import Level, LibraryError, SubnetLibrary, default_library_path, level_index
from dynofa_ros.supernet.preprocess import Frame, Preprocessor, frame_list
from dynofa_ros.supernet.runners import Runner, serve_level
from dynofa_ros.supernet.serving import AUTO, resolve_backend

log = logging.getLogger(__name__)

MODES = ("cache", "inplace")
DEFAULT_MODE = "cache"
_threads_set: int | None = None  # last value set_torch_threads applied


@dataclass(frozen=True)
class Inference:
    """Output of one forward pass and the level that produced it."""

    logits: Tensor
    level: int


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one frame, best first, with softmax probabilities as scores;
    ``latency_s`` covers preprocessing + inference of its batch."""

    class_ids: tuple[int, ...]
    labels: tuple[str, ...]
    scores: tuple[float, ...]
    level: int
    level_name: str
    latency_s: float

    @property
    def label(self) -> str:
        """Top-1 class name."""
        return self.labels[0]

    @property
    def score(self) -> float:
        """Top-1 softmax probability."""
        return self.scores[0]


@dataclass(frozen=True)
class PreparedFrames:
    """Frames preprocessed ahead of their forward pass: ``batch`` at ``resolution`` (None: not yet), and the
    seconds that took."""

    frames: Sequence[Frame]
    encoding: str
    batch: Tensor | None = None
    resolution: int = 0
    seconds: float = 0.0


def extract_subnet(supernet: nn.Module, level: Level | Arch, stats: BnStats | None = None,
                   head: LevelHead | None = None) -> nn.Module:
    """Standalone eval-mode copy of a level's (or an arch's) sub-network, extracted by its family with weights
    copied, with ``stats`` baked in as its BN statistics (None: the supernet's running statistics as they are) and
    ``head`` as its classifier (None: the supernet's)."""
    arch = level.arch if isinstance(level, Level) else level
    if stats is not None:
        apply_bn_stats(supernet, stats)
    subnet = family_of_arch(arch).extract(supernet, arch)
    if head is not None:
        apply_head(subnet, head)
    return subnet


@dataclass
class LevelSwitch:
    """Precomputed in-place switch to one level: its family's architecture switch (``Family.switch_plan``) and
    one copy plan for its BN statistics and classifier head (None when it has neither)."""

    select: Callable[[], None]
    copies: BnCopyPlan | None

    @classmethod
    def build(cls, supernet: nn.Module, level: Level, stats: BnStats | None = None,
              head: LevelHead | None = None) -> LevelSwitch:
        select = family_of_arch(level.arch).switch_plan(supernet, level.arch)
        copies = BnCopyPlan.build(supernet, stats or {})
        if head is not None:
            copies.extend(*head_pairs(supernet, head))
        return cls(select, copies if copies.targets else None)

    def apply(self) -> None:
        self.select()
        if self.copies is not None:
            self.copies.apply()


def _level_stats(family: Family, supernet: nn.Module, levels: Sequence[Level],
                 bn_stats: Sequence[BnStats] | None) -> list[BnStats | None]:
    """Each level's BN statistics, checked against its architecture; all None for a family without them."""
    if not family.bn_statistics:
        if bn_stats is not None:
            raise LibraryError(f"{family.name} supernets have no BN statistics, got {len(bn_stats)} sets")
        return [None] * len(levels)
    if bn_stats is None:
        raise LibraryError(f"{family.name} levels need their BN statistics")
    if len(bn_stats) != len(levels):
        raise LibraryError(f"{len(bn_stats)} BN statistics sets for {len(levels)} levels")
    for i, (level, stats) in enumerate(zip(levels, bn_stats, strict=True)):
        expected = active_bn_channels(supernet, level.arch)
        got = {name: mean.numel() for name, (mean, _) in stats.items()}
        if got != expected:
            bad = sorted(set(expected) ^ set(got)) or [n for n in expected if expected[n] != got[n]]
            raise LibraryError(f"level {i} ({level.name}): BN statistics do not match its architecture "
                               f"(layers/channel counts differ at {bad[:5]})")
    return list(bn_stats)


def library_bn_stats(library: SubnetLibrary) -> list[BnStats | None]:
    """Each level's BN statistics from the library's file; all None for a family without BN statistics."""
    if library.bn_stats_path is None:
        return [None] * len(library.levels)
    return [*load_bn_stats(library.bn_stats_path)]


def library_heads(library: SubnetLibrary) -> list[LevelHead | None]:
    """Each level's classifier head from the library's heads file; all None when its levels share the
    supernet's classifier."""
    if library.heads_path is None:
        return [None] * len(library.levels)
    return [*load_heads(library.heads_path)]


def _check_level_heads(supernet: nn.Module, levels: Sequence[Level], heads: Sequence[LevelHead | None]) -> None:
    if len(heads) != len(levels):
        raise LibraryError(f"{len(heads)} classifier heads for {len(levels)} levels")
    if any(h is None for h in heads) and any(h is not None for h in heads):
        raise LibraryError("either every level has its own classifier head or none has")
    for i, (level, head) in enumerate(zip(levels, heads, strict=True)):
        if head is not None:
            check_head(supernet, head, f"level {i} ({level.name}) classifier head")


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count. Process-wide: every network in the process shares it, so set
    it once per process (warns when it changes a value an earlier call set)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    global _threads_set
    if _threads_set is not None and _threads_set != threads:
        log.warning("torch threads changed from %d to %d: the setting is process-wide and now applies "
                    "to every network in this process", _threads_set, threads)
    torch.set_num_threads(threads)
    _threads_set = threads


class DynamicNetwork:
    """A supernet of any family and its library levels, switchable between frames.

    ``bn_stats``: each level's BN statistics, for a family that has them (None for one that has not).

    ``threads`` (optional) calls :func:`set_torch_threads`: it is a process-wide setting applied only when
    given, not a per-network one; with several networks in one process, set it once (or leave it None). ONNX
    Runtime sessions take the torch thread count in force when they are built.

    ``backend`` (:data:`dynofa_ros.supernet.serving.CHOICES`) serves the cached levels; ``level_backends``
    says what each level runs on (``torch`` where its backend failed its check).
    """

    def __init__(self, supernet: nn.Module, spec: Spec, levels: Sequence[Level],
                 bn_stats: Sequence[BnStats] | None = None, device: str | torch.device = "cpu",
                 mode: str = DEFAULT_MODE, threads: int | None = None, initial_level: int | str = 0,
                 heads: Sequence[LevelHead | None] | None = None, backend: str = AUTO) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.backend = resolve_backend(backend, torch.device(device).type, mode)
        if threads is not None:
            set_torch_threads(threads)
        if not levels:
            raise ValueError("a dynamic network needs at least one level")
        self.spec = spec
        self.levels = list(levels)
        self.mode = mode
        self.device = torch.device(device)
        self.preprocessor = Preprocessor(spec.mean, spec.std)
        self._ahead = Preprocessor(spec.mean, spec.std)  # prepare()'s own buffers: it runs beside a forward pass
        initial_level = self.index_of(initial_level)
        supernet = supernet.to(self.device).eval()
        stats = _level_stats(family_of(spec), supernet, self.levels, bn_stats)
        heads = list(heads) if heads is not None else [None] * len(self.levels)
        _check_level_heads(supernet, self.levels, heads)
        per_level = list(zip(self.levels, stats, heads, strict=True))
        self._lock = threading.Lock()
        if mode == "cache":
            self._subnets = [extract_subnet(supernet, lv, st, hd) for lv, st, hd in per_level]
            self._runners: list[Runner] = [
                serve_level(sub, lv.arch.resolution, self.backend, self.device, name=f"level {i} ({lv.name})")
                for i, (sub, lv) in enumerate(zip(self._subnets, self.levels, strict=True))]
            self._supernet: nn.Module | None = None
            self._plans: list[LevelSwitch] = []
        else:
            self._subnets, self._runners = [], []
            self._supernet = supernet
            self._plans = [LevelSwitch.build(supernet, lv, st, hd) for lv, st, hd in per_level]
        self._active = -1
        self._requested = initial_level
        self._switch(initial_level)

    @classmethod
    def from_library(cls, library: str | Path | SubnetLibrary | None = None, device: str | torch.device = "cpu",
                     mode: str = DEFAULT_MODE, threads: int | None = None, initial_level: int | str = 0,
                     verify: bool = True, backend: str = AUTO) -> DynamicNetwork:
        """Load a library (path, record, or None for :func:`default_library_path`) and its files."""
        if not isinstance(library, SubnetLibrary):
            library = SubnetLibrary.load(library if library is not None else default_library_path(), verify=verify)
        elif verify:
            library.verify_files()
        supernet, _ = load_supernet(library.checkpoint_path, library.spec)
        stats = None if library.bn_stats_path is None else load_bn_stats(library.bn_stats_path)
        return cls(supernet, library.spec, library.levels, stats, device=device, mode=mode, threads=threads,
                   initial_level=initial_level, heads=library_heads(library), backend=backend)

    # -- levels ----------------------------------------------------------------------------------
    def index_of(self, level: int | str) -> int:
        """Level index from an index or a level name (LibraryError, a ValueError, if unknown)."""
        return level_index(self.levels, level)

    @property
    def active_index(self) -> int:
        return self._active

    @property
    def active(self) -> Level:
        """Record of the level the last/next frame runs on (metadata: arch, top1, latency...)."""
        return self.levels[self._active]

    @property
    def requested_index(self) -> int:
        return self._requested

    def request_level(self, level: int | str) -> None:
        """Thread-safe: switch to ``level`` at the next frame (a frame in flight finishes on its level)."""
        self._requested = self.index_of(level)

    def activate(self, level: int | str) -> None:
        """Switch now (waits for a frame in flight to finish)."""
        index = self.index_of(level)
        with self._lock:
            self._requested = index
            self._switch(index)

    def _switch(self, index: int) -> None:
        if index == self._active:
            return
        if self._plans:
            self._plans[index].apply()
        self._active = index

    def _begin_frame(self) -> int:
        requested = self._requested  # one read: a request arriving now applies at the next frame
        if requested != self._active:
            self._switch(requested)
        return self._active

    @property
    def level_backends(self) -> tuple[str, ...]:
        """The backend each level runs on."""
        return tuple(r.backend for r in self._runners) if self._runners else ("torch",) * len(self.levels)

    def _forward(self, index: int, batch: Tensor) -> Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return self._runners[index](batch) if self._runners else self._supernet(batch)

    def runner(self, level: int | str | None = None) -> Runner:
        """What serves ``level`` (default: the active one) in cache mode."""
        if not self._runners:
            raise ValueError("the in-place mode has no per-level runners")
        return self._runners[self._active if level is None else self.index_of(level)]

    def module(self, level: int | str | None = None) -> nn.Module:
        """The network that runs ``level`` (default: the active one); in-place mode: the supernet."""
        if self._supernet is not None:
            return self._supernet
        return self._subnets[self._active if level is None else self.index_of(level)]

    def parameter_bytes(self) -> int:
        """Bytes of parameters and buffers held by this runtime (all cached subnets in cache mode)."""
        modules = [self._supernet] if self._supernet is not None else self._subnets
        return sum(t.numel() * t.element_size() for m in modules
                   for t in (*m.parameters(), *m.buffers()))

    # -- inference -------------------------------------------------------------------------------
    def run(self, batch: Tensor) -> Inference:
        """Apply a pending switch, then one forward pass (inference mode) on the runtime's device."""
        with self._lock, torch.inference_mode():
            index = self._begin_frame()
            return Inference(self._forward(index, batch), index)

    def predict(self, batch: Tensor) -> Tensor:
        """Logits for an N×3×R×R batch (R should be the active level's resolution)."""
        return self.run(batch).logits

    def run_frames(self, frames: Frame | Sequence[Frame], encoding: str = "rgb8") -> Inference:
        """Preprocess frames at the resolution of the level they will run on, then run them."""
        return self._run_prepared(PreparedFrames(frame_list(frames), encoding))

    def prepare(self, frames: Frame | Sequence[Frame], encoding: str = "rgb8") -> PreparedFrames:
        """Preprocess frames now, at the resolution of the level requested for the next frame, without waiting
        for a frame in flight; one thread at a time (e.g. the one receiving frames)."""
        frames = frame_list(frames)
        start = time.perf_counter()
        resolution = self.levels[self._requested].arch.resolution
        batch = self._ahead(frames, encoding, resolution)
        return PreparedFrames(frames, encoding, batch, resolution, time.perf_counter() - start)

    def _run_prepared(self, prepared: PreparedFrames) -> Inference:
        with self._lock, torch.inference_mode():
            index = self._begin_frame()
            resolution = self.levels[index].arch.resolution
            batch = prepared.batch if prepared.resolution == resolution else None
            if batch is None:  # not prepared, or prepared for a level a switch has since replaced
                batch = self.preprocessor(prepared.frames, prepared.encoding, resolution)
            return Inference(self._forward(index, batch), index)

    def time_levels(self, frame: Frame, encoding: str = "rgb8", repeats: int = 30,
                    period_s: float = 0.0) -> tuple[float, ...]:
        """Median seconds to preprocess ``frame``, run it on each level and take its top class (batch 1, after 3
        warm-up runs), as :meth:`classify` does, the runs starting ``period_s`` apart (a camera's frame period: a
        processor idle between frames runs each one slower than a back-to-back loop); the active level is the same
        afterwards.
        Holds the frame lock throughout."""
        if repeats < 1 or not period_s >= 0:
            raise ValueError(f"need repeats >= 1 and period_s >= 0, got {repeats} and {period_s}")
        medians = []
        with self._lock, torch.inference_mode():
            active = self._active
            try:
                for index, level in enumerate(self.levels):
                    self._switch(index)
                    times = []
                    for _ in range(repeats + 3):
                        start = time.perf_counter()
                        _top_k(self._forward(index, self.preprocessor([frame], encoding, level.arch.resolution)), 1)
                        times.append(time.perf_counter() - start)
                        time.sleep(max(0.0, start + period_s - time.perf_counter()))
                    medians.append(statistics.median(times[3:]))
            finally:
                self._switch(active)
        return tuple(medians)

    def classify_batch(self, frames: Sequence[Frame], encoding: str = "rgb8", top_k: int = 1) -> list[Prediction]:
        """Top-``top_k`` classes per frame (raw H×W×C uint8 arrays, or jpeg/png bytes), all on one level."""
        return self.classify_prepared(PreparedFrames(frame_list(frames), encoding), top_k)

    def classify_prepared(self, prepared: PreparedFrames, top_k: int = 1) -> list[Prediction]:
        """:meth:`classify_batch` of frames from :meth:`prepare`; latency includes the preparing."""
        n_classes = len(self.spec.class_names)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= n_classes:
            raise ValueError(f"top_k must be an int in 1..{n_classes}, got {top_k!r}")
        start = time.perf_counter()
        result = self._run_prepared(prepared)
        scores, classes = _top_k(result.logits, top_k)
        latency = time.perf_counter() - start + prepared.seconds
        name = self.levels[result.level].name
        names = self.spec.class_names
        return [Prediction(tuple(c), tuple(names[i] for i in c), tuple(s), result.level, name, latency)
                for c, s in zip(classes, scores, strict=True)]

    def classify(self, frame: Frame, encoding: str = "rgb8", top_k: int = 1) -> Prediction:
        """Top-``top_k`` classes of one frame (best first)."""
        return self.classify_batch([frame], encoding, top_k)[0]


def _top_k(logits: Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Per row: the ``k`` highest softmax probabilities and their classes, best first (one device sync)."""
    scores, classes = torch.softmax(logits.float(), dim=1).topk(k, dim=1)
    return scores.tolist(), classes.tolist()
