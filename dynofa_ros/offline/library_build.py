"""Turn the search's Pareto front into the shipped subnet library (the ``dynofa build-library`` stage).

For each chosen level: for a family with batch norm (ofa_mbv3), BN statistics calibrated on ``n_calib`` training
images and its own classifier head fitted on the training split (``offline.heads``; ``--no-heads``: the
supernet's shared one); for one without (elastic_vit), nothing to calibrate or fit. Then top-1 on the test set,
MACs/params, batch-1 CPU latency re-measured under every CPU profile, GPU latency carried over from the
search (measured by the GPU job, or predicted by its regression model: the method string says which).
With ``--levels-from LIBRARY`` the levels are that library's sub-networks instead (new weights for the same
architectures, e.g. after more training): latency records of other profiles (GPU, other boards) carry over, since
they do not depend on the weights.
Levels are ordered by accuracy; a level not more accurate than one faster by more than the timing noise
(``LATENCY_NOISE``) is dropped, so latency rises along them within that noise. The library
(``library.json``, ``supernet.pt``, and ``bn_stats.pt`` and ``heads.pt`` where the levels have them) is written with
``supernet.library_write.write_library`` and loaded back to validate it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dynofa_ros.offline.bn_tuning import BnTuneConfig, fit_level
from dynofa_ros.offline.calibrate import calibrate_bn
from dynofa_ros.offline.data import ImageRows
from dynofa_ros.offline.evaluate import top1
from dynofa_ros.offline.heads import head_note
from dynofa_ros.offline.profile import cpu_threads, measure_subnets, processor_name
from dynofa_ros.offline.search import SEARCH_FORMAT, pick_spread
from dynofa_ros.supernet.bn import BnStats
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.cost import subnet_cost
from dynofa_ros.supernet.family import ELASTIC_VIT, OFA_MBV3, Arch, Spec, family_of, spec_from_dict
from dynofa_ros.supernet.heads import LevelHead, using_head
from dynofa_ros.supernet.library import LatencyProfile, Level, SubnetLibrary
from dynofa_ros.supernet.library_write import write_library
from dynofa_ros.supernet.serving import AUTO, TORCH, resolve_backend

SIZE_LIMIT_BYTES = 25 * 1024 * 1024
LATENCY_NOISE = 0.05  # two CPU timings of one level on a shared machine differ by up to this fraction
# what a library's default name says of its supernet after the dataset's name, per family
NAME_TAGS: dict[str, Callable[[Any], str]] = {
    OFA_MBV3.name: lambda spec: f"ofa-mbv3-w{spec.width_mult:.1f}",
    ELASTIC_VIT.name: lambda spec: f"elastic-vit-e{spec.max_embed_dim}-d{spec.max_depth}",
}


@dataclass
class LevelFit:
    """A level's BN statistics (None for a family without them), classifier head (None: the shared one), test top-1
    with both and, when asked for, validation top-1."""

    stats: BnStats | None
    head: LevelHead | None
    top1: float
    val_top1: float | None = None


@dataclass
class Candidate:
    """A built level before ordering: its record, BN statistics and head."""

    level: Level
    fit: LevelFit


def load_search(path: Path | str) -> dict[str, Any]:
    """Read a ``dynofa search`` result file (FileNotFoundError / ValueError on a bad file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"search result not found: {path} (run `dynofa search` first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"search result {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SEARCH_FORMAT:
        raise ValueError(f"{path} is not a `dynofa search` result (format {SEARCH_FORMAT!r})")
    return data


def calibrate_and_test(supernet: Any, arch: Arch, calib: np.ndarray, n_calib: int, test_x: np.ndarray,
                       test_y: np.ndarray, spec: Spec, calib_y: np.ndarray | None = None,
                       tune: BnTuneConfig | None = None, val: tuple[np.ndarray, np.ndarray] | None = None) -> LevelFit:
    """``arch``'s BN statistics from ``n_calib`` of the ``calib`` images; with ``tune`` its own BN scale/shift and
    classifier trained on all of them and folded in (``offline.bn_tuning``; needs ``calib_y``); with ``calib_y``
    (the labels of all ``calib``) its classifier head fitted on all of them; then its top-1 on the test images (and
    on ``val``, images and labels, when given). A family without batch norm is tested as it is (no statistics, the
    shared classifier: ``calib``, ``calib_y`` and ``tune`` unused)."""
    stats, head = None, None
    if family_of(spec).bn_statistics:
        stats = calibrate_bn(supernet, arch, calib, n=n_calib, spec=spec)
        stats, head = fit_level(supernet, arch, stats, calib, calib_y, spec, tune)
    with using_head(supernet, head):
        return LevelFit(stats, head, top1(supernet, arch, test_x, test_y, spec),
                        None if val is None else top1(supernet, arch, *val, spec))


def build_candidate(supernet: Any, arch: Arch, latency: tuple[LatencyProfile, ...], calib: np.ndarray,
                    n_calib: int, test_x: np.ndarray, test_y: np.ndarray, spec: Spec,
                    calib_y: np.ndarray | None, tune: BnTuneConfig | None) -> Candidate:
    """An unnamed level of ``arch`` with these latency records: :func:`calibrate_and_test`, MACs and params."""
    fit = calibrate_and_test(supernet, arch, calib, n_calib, test_x, test_y, spec, calib_y, tune)
    macs, params = subnet_cost(supernet, arch)
    return Candidate(Level("", arch, fit.top1, macs, params, latency), fit)


def calibration_note(n_calib: int, tune: BnTuneConfig | None = None, n_tune: int = 0, dataset: str = "cifar10"
                     ) -> str:
    """The library's ``calibration`` record for statistics from ``n_calib`` training images (then, with ``tune``,
    the level's own BN scale and shift trained on ``n_tune`` images and folded in)."""
    note = f"{n_calib} {dataset}-train images (seeded random subset of the training split)"
    return note if tune is None else f"{note}; then {tune.note(n_tune, dataset)}"


def eval_set_note(n_images: int, dataset: str = "cifar10") -> str:
    """The library's ``eval_set`` record for a top-1 measured on ``n_images`` test images."""
    return f"{dataset}-test ({n_images} images)"


def dominates(j: int, i: int, latency: Sequence[float], accuracy: Sequence[float], noise: float) -> bool:
    """Whether level ``j`` makes level ``i`` redundant: at least as accurate and faster by more than the timing
    ``noise`` (a fraction of ``i``'s latency), or exactly as accurate and faster (or as fast and listed first)."""
    if accuracy[j] < accuracy[i] or j == i:
        return False
    if accuracy[j] > accuracy[i]:
        return latency[j] < latency[i] * (1 - noise)
    return (latency[j], j) < (latency[i], i)


def is_monotone(latency: Sequence[float], accuracy: Sequence[float], noise: float = LATENCY_NOISE) -> bool:
    """Whether levels in this order rise strictly in accuracy while latency never falls by more than ``noise``
    from one level to the next (the benchmark's goal, and what :func:`monotone_levels` returns)."""
    return all(b > a for a, b in zip(accuracy, accuracy[1:])) and all(
        b >= a * (1 - noise) for a, b in zip(latency, latency[1:]))


def monotone_levels(latency: Sequence[float], accuracy: Sequence[float], noise: float = LATENCY_NOISE) -> list[int]:
    """Indices of the levels no other level makes redundant (:func:`dominates`), by increasing accuracy. Two
    levels timed within ``noise`` of each other both stay, so a re-timing on a noisy machine does not drop one;
    the result :func:`is_monotone`."""
    kept = [i for i in range(len(latency))
            if not any(dominates(j, i, latency, accuracy, noise) for j in range(len(latency)))]
    return sorted(kept, key=lambda i: (accuracy[i], latency[i]))


def library_name(dataset: str, spec: Spec) -> str:
    """A library's default name: the dataset's, then the supernet's (:data:`NAME_TAGS`)."""
    return f"{dataset}-{NAME_TAGS[spec.family](spec)}"


def write_levels(out: Path, name: str, checkpoint: Path, spec: Spec, built: Sequence[Candidate], primary: str,
                 n_calib: int, n_tune: int, tune: BnTuneConfig | None, heads: bool, n_test: int,
                 dataset: str = "cifar10", backend: str = TORCH) -> tuple[SubnetLibrary, int]:
    """Order ``built`` by accuracy, drop the levels :func:`monotone_levels` finds redundant by their ``primary``
    latency with ``backend``, name the rest L0, L1, ... and write them as a library into ``out`` with the weights of
    ``checkpoint`` (read afresh: the calibration changed the BN buffers of the supernet in memory) and their BN
    statistics where the family has them; the library loaded back and how many levels were dropped."""
    lat = [c.level.latency_for(primary, backend).p50_s for c in built]
    kept = [built[i] for i in monotone_levels(lat, [c.level.top1 for c in built])]
    levels = [Level(f"L{i}", c.level.arch, c.level.top1, c.level.macs, c.level.params, c.level.latency)
              for i, c in enumerate(kept)]
    fresh, spec = load_supernet(checkpoint, spec)
    stats = [c.fit.stats for c in kept] if family_of(spec).bn_statistics else None
    write_library(out, name, fresh, spec, levels, stats, eval_set=eval_set_note(n_test, dataset),
                  calibration=calibration_note(n_calib, tune, n_tune, dataset),
                  heads=[c.fit.head for c in kept] if heads else None,
                  heads_fit=head_note(n_tune, bn_tuned=tune is not None, dataset=dataset))
    return SubnetLibrary.load(Path(out) / "library.json"), len(built) - len(kept)


@dataclass
class LevelSource:
    """The sub-networks to build levels of, their carried-over (GPU) latency records, the CPU profile and the
    serving backend whose latency orders them, and the supernet spec they belong to."""

    archs: list[Arch]
    carried: list[tuple[LatencyProfile, ...]]
    primary: str
    spec: Spec
    backend: str = TORCH


def levels_of_search(path: Path, n_levels: int) -> LevelSource:
    """``n_levels`` sub-networks spread in latency over a search's Pareto front, ordered by its profile."""
    search = load_search(path)
    front = [search["points"][i] for i in search["front"]]
    chosen = [front[i] for i in pick_spread([p["cpu"]["p50_s"] for p in front], n_levels)]
    gpu = [(LatencyProfile.from_dict(p["gpu"], f"{path}: gpu latency"),) if p.get("gpu") else () for p in chosen]
    spec = spec_from_dict(search["spec"])
    arch_type = family_of(spec).arch_type
    return LevelSource([arch_type.from_dict(p["arch"]) for p in chosen], gpu, search["primary_profile"], spec,
                       search.get("backend", TORCH))


def levels_of_library(path: Path, profiles: Sequence[str], backends: Sequence[str] = (TORCH,)) -> LevelSource:
    """A library's level sub-networks with their latency records but those of ``profiles`` with ``backends``
    (those are measured again), ordered by the first of ``profiles`` with the backend a CPU serves them with when
    it is one of ``backends``, else the first of ``backends``."""
    lib = SubnetLibrary.load(path, verify=False)
    served = resolve_backend(AUTO, "cpu")
    return LevelSource([lv.arch for lv in lib.levels], [lv.latency_except(profiles, backends) for lv in lib.levels],
                       profiles[0], lib.spec, served if served in backends else backends[0])


def cpu_latency(supernet: Any, archs: Sequence[Arch], profiles: Sequence[str], warmup: int,
                repeats: int, rounds: int, backends: Sequence[str] = (TORCH,)) -> list[tuple[LatencyProfile, ...]]:
    """Direct batch-1 latency of each arch under each CPU profile with each backend (archs timed interleaved)
    as records."""
    runs = [(p, b) for b in backends for p in profiles]
    measured = [measure_subnets(supernet, archs, cpu_threads(p), warmup, repeats, rounds, backend=b) for p, b in runs]
    return [tuple(LatencyProfile(p, "cpu", cpu_threads(p), t.p50_s, t.p90_s, t.method, processor_name(), backend=b)
                  for (p, b), t in zip(runs, timings, strict=True))
            for timings in zip(*measured, strict=True)]


@dataclass
class LevelImages:
    """The images levels are built on: ``calib``, training images (BN statistics from ``n_calib`` of them; heads
    and BN tuning on all, with their labels ``calib_y``, None when the levels share the supernet's classifier), and
    the test images ``test_x`` with their labels ``test_y``."""

    calib: np.ndarray | ImageRows
    calib_y: np.ndarray | None
    n_calib: int
    test_x: np.ndarray | ImageRows
    test_y: np.ndarray


def build_candidates(supernet: Any, spec: Spec, source: LevelSource, images: LevelImages,
                     tune: BnTuneConfig | None, profiles: Sequence[str], warmup: int, repeats: int, rounds: int,
                     backends: Sequence[str] = (TORCH,)) -> list[Candidate]:
    """A candidate level of each of ``source``'s sub-networks: its batch-1 latency under the CPU ``profiles``
    with ``backends`` (:func:`cpu_latency`) and the carried-over records, then :func:`build_candidate`; a
    progress line for each."""
    latencies = cpu_latency(supernet, source.archs, profiles, warmup, repeats, rounds, backends)
    built: list[Candidate] = []
    bar = tqdm(source.archs, desc="calibrate + test levels", unit="level")
    for arch, latency, other in zip(bar, latencies, source.carried, strict=True):
        built.append(build_candidate(supernet, arch, latency + other, images.calib, images.n_calib, images.test_x,
                                     images.test_y, spec, images.calib_y, tune))
        lv = built[-1].level
        tqdm.write(f"built r{arch.resolution} {lv.macs / 1e6:.1f} MMACs: top-1 {lv.top1 * 100:.2f} %  "
                   f"{source.primary} {source.backend} p50 "
                   f"{lv.latency_for(source.primary, source.backend).p50_s * 1e3:.2f} ms")
    return built
