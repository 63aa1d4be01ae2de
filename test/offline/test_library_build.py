"""Library building: level ordering/monotonicity, search-file validation, spec mismatch.

The full build on a tiny slice (files written, validated and loaded by the runtime) runs in test_cli.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynofa_ros.offline.commands import build_library
from dynofa_ros.offline.library_build import LATENCY_NOISE, load_search, monotone_levels
from dynofa_ros.offline.search import SEARCH_FORMAT
from dynofa_ros.supernet.spec import SupernetSpec


def test_monotone_levels_orders_levels_and_drops_dominated() -> None:
    latency = [9.0, 3.0, 5.0, 7.0, 4.0]
    accuracy = [0.90, 0.70, 0.80, 0.79, 0.70]
    assert monotone_levels(latency, accuracy) == [1, 2, 0]
    assert monotone_levels([1.0], [0.5]) == [0]
    assert monotone_levels([2.0, 1.0], [0.5, 0.5]) == [1]
    assert monotone_levels([1.0, 1.0], [0.5, 0.5]) == [0]


def test_monotone_levels_keeps_a_level_timed_within_the_noise_of_a_more_accurate_one() -> None:
    # the shipped L0 (r40) and L1 (r48) time within 2 % of each other; a re-timing that puts L0 1 % behind L1
    # must not drop it, while a level 10 % slower than a more accurate one still goes
    assert monotone_levels([4.65, 4.60, 5.4], [0.835, 0.839, 0.851]) == [0, 1, 2]
    assert monotone_levels([5.10, 4.60, 5.4], [0.835, 0.839, 0.851]) == [1, 2]
    assert monotone_levels([4.65, 4.60], [0.835, 0.839], noise=0.0) == [1]


def test_monotone_levels_result_passes_the_benchmark_monotonicity_goal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        latency, accuracy = rng.uniform(1, 2, 8), rng.choice(np.linspace(0.8, 0.9, 6), 8)
        kept = monotone_levels(latency, accuracy)
        assert kept, "some level is never redundant"
        for a, b in zip(kept, kept[1:]):
            assert accuracy[b] > accuracy[a]
            assert latency[b] >= latency[a] * (1 - LATENCY_NOISE)
        dropped = set(range(8)) - set(kept)
        assert all(any(accuracy[j] >= accuracy[i] and latency[j] <= latency[i] for j in kept) for i in dropped)


def test_load_search_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dynofa search"):
        load_search(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_search(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a `dynofa search` result"):
        load_search(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"format": SEARCH_FORMAT, "points": []}))
    assert load_search(tmp_path / "c.json")["points"] == []


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    build_library.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", "x.pt"])
    for k, v in overrides.items():
        setattr(args, k, v)
    return args


def test_build_refuses_a_search_of_another_supernet(tiny_trained: tuple[torch.nn.Module, Path],
                                                     tmp_path: Path) -> None:
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"format": SEARCH_FORMAT, "spec": SupernetSpec().to_dict(),
                                  "primary_profile": "cpu-1t", "points": [], "front": []}))
    with pytest.raises(ValueError, match="spec differs"):
        build_library.run(_args(checkpoint=tiny_trained[1], search=search, out=tmp_path / "lib"))
    with pytest.raises(ValueError, match="--levels"):
        build_library.run(_args(search=search, levels=1))
    with pytest.raises(ValueError, match="unknown CPU profile"):
        build_library.run(_args(search=search, profiles=["cpu"]))
    assert not (tmp_path / "lib").exists()


def test_levels_are_ranked_by_the_backend_that_serves_them(tmp_path: Path) -> None:
    from dynofa_ros.offline.library_build import levels_of_library
    from dynofa_ros.supernet.library import default_library_path
    from dynofa_ros.supernet.serving import AUTO, TORCH, resolve_backend

    library = default_library_path()
    served = resolve_backend(AUTO, "cpu")
    assert levels_of_library(library, ["cpu-1t"], [TORCH, served]).backend == served
    assert levels_of_library(library, ["cpu-1t"], ["other"]).backend == "other"
    search = tmp_path / "search.json"
    search.write_text(json.dumps({"format": SEARCH_FORMAT, "spec": SupernetSpec().to_dict(), "backend": "onnxruntime",
                                  "primary_profile": "cpu-1t", "points": [], "front": []}))
    with pytest.raises(ValueError, match="onnxruntime latency; include it in --backends"):
        build_library.run(_args(search=search, backends=[TORCH]))
