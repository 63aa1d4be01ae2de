"""Evolutionary sub-network search under latency constraints, and Pareto-front extraction.

``SearchSpace`` samples, mutates and crosses over the archs of the supernet's family (:data:`FAMILY_OPERATORS`)
without leaving its search space (every result is canonical, so duplicates compare equal). ``evolutionary_search``
maximises a batch scoring function (an accuracy predictor) subject to ``latency(arch) <= constraint``
(the prediction of the serving backend's latency predictor); ``pareto_front`` keeps the non-dominated
(latency, accuracy) points. ``search_subnets`` is the whole ``dynofa search`` stage: evaluated candidates, an
accuracy predictor, a sweep of latency limits, every point measured on the backend, the front.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from dynofa_ros.offline.evaluate import evaluate_many
from dynofa_ros.offline.predictor import fit_and_report
from dynofa_ros.offline.profile import (
    LatencyLUT,
    LatencyPredictor,
    LinearLatencyModel,
    Measured,
    measure_subnets,
    prediction_error,
    processor_name,
)
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.family import ELASTIC_VIT, OFA_MBV3, Arch, Spec, family_of, family_of_arch, spec_from_dict
from dynofa_ros.supernet.serving import TORCH
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.vit_arch import ElasticViTSpec


def _mutate_ofa(spec: SupernetSpec, arch: SubnetArch, rng: random.Random, prob: float) -> SubnetArch:
    """Resample each gene (per-block ks and e, per-stage d) with probability ``prob``; the resolution is kept."""
    def pick(value: int, choices: Sequence[int]) -> int:
        return rng.choice(choices) if rng.random() < prob else value

    return SubnetArch(tuple(pick(k, spec.ks_list) for k in arch.ks), tuple(pick(e, spec.expand_list) for e in arch.e),
                      tuple(pick(d, spec.depth_list) for d in arch.d), arch.resolution)


def _crossover_ofa(spec: SupernetSpec, a: SubnetArch, b: SubnetArch, rng: random.Random) -> SubnetArch:
    """Uniform crossover: each gene from either parent; ``a``'s resolution."""
    def mix(x: Sequence[int], y: Sequence[int]) -> tuple[int, ...]:
        return tuple(u if rng.random() < 0.5 else v for u, v in zip(x, y, strict=True))

    return SubnetArch(mix(a.ks, b.ks), mix(a.e, b.e), mix(a.d, b.d), a.resolution)


@dataclass(frozen=True)
class FamilyOperators:
    """What the search does with one family's archs, the resolution aside: ``mutate(spec, arch, rng, prob)`` draws
    each choice again with probability ``prob``, ``crossover(spec, a, b, rng)`` takes each from either parent;
    ``blocks(arch)`` counts its active blocks (encoder layers), the depth term of the GPU latency model."""

    mutate: Callable[[Any, Any, random.Random, float], Arch]
    crossover: Callable[[Any, Any, Any, random.Random], Arch]
    blocks: Callable[[Any], int]


FAMILY_OPERATORS: dict[str, FamilyOperators] = {
    OFA_MBV3.name: FamilyOperators(_mutate_ofa, _crossover_ofa, lambda arch: sum(arch.d)),
    ELASTIC_VIT.name: FamilyOperators(ElasticViTSpec.mutate, ElasticViTSpec.crossover, lambda arch: arch.depth),
}


@dataclass(frozen=True)
class SearchSpace:
    """The supernet's choices, optionally restricted to some input resolutions."""

    spec: Spec
    resolutions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        bad = [r for r in self.resolutions if r not in self.spec.resolutions]
        if bad:
            raise ValueError(f"resolutions {bad} are not in the supernet's {list(self.spec.resolutions)}")

    @property
    def allowed_resolutions(self) -> tuple[int, ...]:
        return self.resolutions or self.spec.resolutions

    @property
    def operators(self) -> FamilyOperators:
        return FAMILY_OPERATORS[self.spec.family]

    def contains(self, arch: Arch) -> bool:
        if not isinstance(arch, family_of(self.spec).arch_type):
            return False
        try:
            arch.validate(self.spec)
        except ValueError:
            return False
        return arch.resolution in self.allowed_resolutions

    def _at(self, arch: Arch, resolution: int) -> Arch:
        return replace(arch, resolution=resolution).canonical(self.spec)

    def smallest(self) -> Arch:
        return self._at(family_of(self.spec).smallest(self.spec), min(self.allowed_resolutions))

    def largest(self) -> Arch:
        return self._at(family_of(self.spec).largest(self.spec), max(self.allowed_resolutions))

    def sample(self, rng: random.Random) -> Arch:
        arch = family_of(self.spec).sample(self.spec, rng)
        return self._at(arch, rng.choice(self.allowed_resolutions))

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.1) -> Arch:
        """Resample each gene (the family's choices, then the resolution) with probability ``prob``."""
        child = self.operators.mutate(self.spec, arch, rng, prob)
        return self._at(child, rng.choice(self.allowed_resolutions) if rng.random() < prob else arch.resolution)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Uniform crossover: each gene from either parent."""
        return self._at(self.operators.crossover(self.spec, a, b, rng), rng.choice((a.resolution, b.resolution)))


@dataclass(frozen=True)
class EvolutionConfig:
    """Population size, generations and operator rates (OFA's evolution finder defaults, smaller)."""

    population: int = 100
    generations: int = 30
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutate_prob: float = 0.1
    max_tries: int = 200

    def __post_init__(self) -> None:
        if self.population < 2 or self.generations < 1 or self.max_tries < 1:
            raise ValueError("population must be >= 2, generations and max_tries >= 1")
        for name in ("parent_ratio", "mutation_ratio", "mutate_prob"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class SearchResult:
    """Best arch found under one latency constraint."""

    constraint_s: float
    arch: Arch
    score: float
    latency_s: float
    n_scored: int


def evolutionary_search(space: SearchSpace, score: Callable[[list[Arch]], np.ndarray],
                        latency: Callable[[Arch], float], constraint_s: float,
                        config: EvolutionConfig | None = None, rng: random.Random | None = None,
                        seeds: Sequence[Arch] = ()) -> SearchResult:
    """Maximise ``score`` over archs with ``latency(arch) <= constraint_s``.

    The population starts from the feasible ``seeds`` (e.g. known good subnets), the smallest subnet,
    and random feasible samples and mutations of those; each generation keeps the best
    ``parent_ratio`` and refills by mutation and crossover of parents, rejecting infeasible and
    duplicate children. ValueError if even the smallest subnet breaks the constraint.
    """
    config = config or EvolutionConfig()
    rng = rng or random.Random(0)
    cache: dict[Arch, float] = {}

    def feasible(a: Arch) -> bool:
        if a not in cache:
            cache[a] = latency(a)
        return cache[a] <= constraint_s

    smallest = space.smallest()
    if not feasible(smallest):
        raise ValueError(f"latency constraint {constraint_s * 1e3:.3f} ms is below the smallest subnet's "
                         f"{cache[smallest] * 1e3:.3f} ms")
    population: dict[Arch, None] = {smallest: None}
    for a in seeds:
        a = a.canonical(space.spec)
        if space.contains(a) and feasible(a):
            population[a] = None

    def fill(make: Callable[[], Arch], target: int) -> None:
        for _ in range(config.max_tries * max(1, target - len(population))):
            if len(population) >= target:
                return
            child = make()
            if child not in population and feasible(child):
                population[child] = None

    bases = list(population)
    fill(lambda: space.sample(rng), config.population)
    fill(lambda: space.mutate(rng.choice(bases), rng, max(config.mutate_prob, 0.3)), config.population)

    scores: dict[Arch, float] = {}

    def rank(archs: list[Arch]) -> list[Arch]:
        new = [a for a in archs if a not in scores]
        if new:
            scores.update(zip(new, (float(s) for s in score(new)), strict=True))
        return sorted(archs, key=lambda a: -scores[a])

    n_parents = max(2, int(config.population * config.parent_ratio))
    for _ in range(config.generations):
        parents = rank(list(population))[:n_parents]
        population = dict.fromkeys(parents)
        n_mutants = n_parents + int(config.population * config.mutation_ratio)
        fill(lambda p=parents: space.mutate(rng.choice(p), rng, config.mutate_prob), n_mutants)
        if len(parents) > 1:  # under the lowest limits the smallest subnet may be the only feasible one
            fill(lambda p=parents: space.crossover(*rng.sample(p, 2), rng), config.population)
    best = rank(list(population))[0]
    return SearchResult(constraint_s, best, scores[best], cache[best], len(scores))


def constraint_sweep(low_s: float, high_s: float, n: int) -> list[float]:
    """``n`` latency limits spaced geometrically from ``low_s`` to ``high_s`` (both included)."""
    if n < 1 or not 0 < low_s <= high_s:
        raise ValueError(f"need n >= 1 and 0 < low <= high, got n={n}, low={low_s}, high={high_s}")
    if n == 1:
        return [high_s]
    return [low_s * (high_s / low_s) ** (i / (n - 1)) for i in range(n)]


def sweep_search(space: SearchSpace, score: Callable[[list[Arch]], np.ndarray], latency: LatencyPredictor,
                 n_constraints: int, config: EvolutionConfig | None = None, rng: random.Random | None = None,
                 seeds: Sequence[Arch] = ()) -> tuple[list[float], dict[Arch, SearchResult]]:
    """:func:`evolutionary_search` under each of ``n_constraints`` limits of ``latency``'s prediction, geometric from
    the space's smallest to its largest subnet: the limits and the distinct best subnets found (with their result).
    """
    rng = rng or random.Random(0)
    constraints = constraint_sweep(latency.predict(space.smallest()), latency.predict(space.largest()), n_constraints)
    found: dict[Arch, SearchResult] = {}
    for c in tqdm(constraints, desc=f"evolutionary search ({latency.backend} latency)", unit="limit"):
        result = evolutionary_search(space, score, latency.predict, c, config, rng, seeds)
        found.setdefault(result.arch, result)
    return constraints, found


def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, by increasing latency (and strictly increasing accuracy)."""
    if len(latency) != len(accuracy):
        raise ValueError(f"{len(latency)} latencies for {len(accuracy)} accuracies")
    order = sorted(range(len(latency)), key=lambda i: (latency[i], -accuracy[i]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return front


def pick_spread(latency: Sequence[float], n: int) -> list[int]:
    """Up to ``n`` indices of ascending ``latency`` spread geometrically, first and last always kept."""
    if n < 2:
        raise ValueError(f"need at least 2 levels, got {n}")
    if len(latency) <= n:
        return list(range(len(latency)))
    logs = np.log(np.asarray(latency, dtype=float))
    chosen = {0, len(latency) - 1}
    for target in np.linspace(logs[0], logs[-1], n)[1:-1]:
        free = [i for i in range(len(latency)) if i not in chosen]
        chosen.add(min(free, key=lambda i: abs(logs[i] - target)))
    return sorted(chosen)


# ------------------------------------------------------------------------------------- the search stage

SEARCH_FORMAT = "dynofa-search/1"


@dataclass
class Point:
    """A subnet with measured val top-1 and (filled in later) its CPU latency served by the search's backend:
    ``cpu`` measured, ``lut_s`` predicted by that backend's predictor in the LUT file."""

    arch: Arch
    source: str
    val_top1: float
    macs: int
    params: int
    gpu: dict[str, Any] | None = None
    lut_s: float = 0.0
    predicted_top1: float = 0.0
    cpu: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "source": self.source, "val_top1": self.val_top1, "macs": self.macs,
                "params": self.params, "lut_s": self.lut_s, "predicted_top1": self.predicted_top1,
                "cpu": self.cpu, "gpu": self.gpu}


def load_gpu_results(path: Path | str, spec: Spec,
                     checkpoint_sha256: str | None = None) -> tuple[list[Point], dict[str, Any]]:
    """Candidates (val top-1, MACs, params, optional GPU latency) of a GPU job's ``results.json``.

    Returns the points (GPU latency as a measured library record where present) and the job's ``env``,
    ``args`` and checkpoint SHA-256 (None in results that predate it) as ``{"env", "args", "sha256"}``.
    Raises ValueError when the results record another checkpoint than ``checkpoint_sha256``: their val
    accuracies belong to those weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GPU candidate results not found: {path}")
    try:
        data = json.loads(path.read_text())
        if spec_from_dict(data["spec"]) != spec:
            raise ValueError(f"{path} was evaluated with another supernet spec than the checkpoint's")
        checkpoint = data.get("checkpoint") or {}
        sha = checkpoint.get("sha256") if isinstance(checkpoint, dict) else None
        if checkpoint_sha256 and sha and sha != checkpoint_sha256:
            raise ValueError(f"{path} evaluated another checkpoint (sha256 {sha[:12]}...) than this one "
                             f"({checkpoint_sha256[:12]}...): its val accuracies do not hold for these weights; "
                             "pass that job's checkpoint, or leave out --candidates to evaluate subnets here")
        env, method = data.get("env", {}), data.get("latency_method", "")
        points = []
        for c in data["candidates"]:
            arch = family_of(spec).arch_type.from_dict(c["arch"]).canonical(spec)
            arch.validate(spec)
            gpu = None
            if c.get("latency"):
                gpu = {"profile": "gpu", "device": env.get("device", "cuda"), "processor": env.get("gpu", ""),
                       "threads": 1, "freq_hz": None, "batch": 1, "p50_s": float(c["latency"]["p50_s"]),
                       "p90_s": float(c["latency"]["p90_s"]), "method": f"measured: {method}"}
            points.append(Point(arch, "candidate", float(c["val_top1"]), int(c["macs"]), int(c["params"]), gpu))
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a GPU job results.json with candidates: {exc!r}") from exc
    unique = {p.arch: p for p in points}
    return list(unique.values()), {"env": env, "args": data.get("args", {}), "sha256": sha}


def _evaluate_points(supernet: nn.Module, spec: Spec, archs: Sequence[Arch], source: str,
                     val: tuple[np.ndarray, np.ndarray], calib: np.ndarray, n_calib: int) -> list[Point]:
    evals = evaluate_many(supernet, archs, val[0], val[1], calib, spec, n_calib=min(n_calib, len(calib)))
    return [Point(e.arch, source, e.top1, e.macs, e.params) for e in evals]


def _blocks(arch: Arch) -> int:
    return FAMILY_OPERATORS[family_of_arch(arch).name].blocks(arch)


def fill_gpu_latency(points: Sequence[Point]) -> LinearLatencyModel | None:
    """Give every point without a measured GPU latency a predicted one (linear model on active blocks and
    MACs fitted to the measured points; p90 scaled by their median p90/p50). None with < 4 measured."""
    measured = [p for p in points if p.gpu]
    if len(measured) < 4:
        return None
    model = LinearLatencyModel.fit([_blocks(p.arch) for p in measured], [p.macs for p in measured],
                                   [p.gpu["p50_s"] for p in measured])
    tail = statistics.median(p.gpu["p90_s"] / p.gpu["p50_s"] for p in measured)
    method = (f"predicted: linear fit on active blocks + MACs of {len(measured)} measured subnets "
              f"(held-out MAPE {model.error['holdout_mape'] * 100:.1f} %)")
    for p in points:
        if p.gpu is None:
            p50 = model.predict(_blocks(p.arch), p.macs)
            p.gpu = {**measured[0].gpu, "p50_s": p50, "p90_s": p50 * max(tail, 1.0), "method": method}
    return model


@dataclass(frozen=True)
class SearchConfig:
    """How :func:`search_subnets` samples, searches and times: random candidates to evaluate when none are given,
    latency limits, the evolution, the seed, the timing of every point and the BN calibration images per
    evaluated subnet."""

    random_candidates: int = 60
    constraints: int = 8
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    seed: int = 0
    warmup: int = 5
    repeats: int = 20
    n_calib: int = 2000


def search_subnets(supernet: nn.Module, spec: Spec, lut: LatencyLUT, val: tuple[np.ndarray, np.ndarray],
                   calib: np.ndarray, candidates: Sequence[Point] | None = None, config: SearchConfig | None = None,
                   *, checkpoint: str, lut_path: str, gpu_env: dict[str, Any] | None = None,
                   backend: str = TORCH) -> dict[str, Any]:
    """The ``dynofa search`` result (``SEARCH_FORMAT``) for ``supernet`` served by ``backend`` under ``lut``'s
    profile.

    The ``candidates`` in the LUT's search space (None: random subnets evaluated on ``val``, images and labels,
    after BN calibration on ``calib`` for a family with BN statistics) fit an accuracy predictor; an evolutionary
    search under each of a geometric sweep of limits on ``backend``'s predicted latency (``lut.predictor(backend)``)
    adds its best subnets (evaluated likewise); every point's batch-1 latency is measured served by ``backend`` and
    the Pareto front taken. The result records the supernet's family and spec; ``checkpoint``, ``lut_path`` and
    ``gpu_env`` (the candidates' GPU job) as given. ValueError with fewer than 10 candidates or no predictor of
    ``backend`` in ``lut``.
    """
    config = config or SearchConfig()
    latency = lut.predictor(backend)
    space = SearchSpace(spec, lut.resolutions)
    rng = random.Random(config.seed)
    if candidates is not None:
        points = [p for p in candidates if space.contains(p.arch)]
    else:
        archs = list(dict.fromkeys([space.smallest(), space.largest()]
                                   + [space.sample(rng) for _ in range(config.random_candidates)]))
        points = _evaluate_points(supernet, spec, archs, "candidate", val, calib, config.n_calib)
    if len(points) < 10:
        raise ValueError(f"only {len(points)} candidate subnets with val accuracy; the predictor needs >= 10")
    predictor, report = fit_and_report(spec, [p.arch for p in points], [p.val_top1 for p in points],
                                       seed=config.seed)

    constraints, found = sweep_search(space, predictor.predict, latency, config.constraints, config.evolution, rng,
                                      [p.arch for p in points])
    known = {p.arch for p in points}
    new = [a for a in found if a not in known]
    points += _evaluate_points(supernet, spec, new, "search", val, calib, config.n_calib)

    timings = measure_subnets(supernet, [p.arch for p in points], lut.threads, config.warmup, config.repeats,
                              rounds=1, backend=backend)
    for p, t, acc in zip(points, timings, predictor.predict([p.arch for p in points]), strict=True):
        p.cpu = {"p50_s": t.p50_s, "p90_s": t.p90_s}
        p.lut_s = latency.predict(p.arch)
        p.predicted_top1 = float(acc)
    gpu_model = fill_gpu_latency(points)
    front = pareto_front([p.cpu["p50_s"] for p in points], [p.val_top1 for p in points])
    measured = [Measured(p.arch, lut.profile, t) for p, t in zip(points, timings, strict=True)]
    return {
        "format": SEARCH_FORMAT, "family": spec.family, "spec": spec.to_dict(), "checkpoint": checkpoint,
        "primary_profile": lut.profile, "backend": backend, "cpu_threads": lut.threads, "processor": processor_name(),
        "cpu_method": f"extracted subnet served by {backend}, batch 1, {config.warmup} warm-up, median/p90 of "
                      f"{config.repeats}",
        "lut": {"path": lut_path, "backend": backend, "method": latency.method, "error_profile_run": latency.error,
                "error_on_points": prediction_error(latency, measured)},
        "val_images": len(val[1]), "predictor": report.to_dict(), "gpu_env": gpu_env or {},
        "gpu_model": None if gpu_model is None else {"coef": gpu_model.coef, "error": gpu_model.error},
        "constraints_s": constraints,
        "search": [{"constraint_s": r.constraint_s, "arch": r.arch.to_dict(), "predicted_top1": r.score,
                    "lut_s": r.latency_s, "n_scored": r.n_scored} for r in found.values()],
        "points": [p.to_dict() for p in points], "front": front,
    }
