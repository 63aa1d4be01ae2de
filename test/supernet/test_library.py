"""Subnet library file: round trip, validation errors, sha256 checks, default path lookup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynofa_ros.supernet import library as library_mod
from dynofa_ros.supernet.elastic_vit import ElasticViT
from dynofa_ros.supernet.library import (
    LatencyProfile,
    Level,
    LibraryError,
    SubnetLibrary,
    default_library_path,
    library_path,
)
from dynofa_ros.supernet.library_write import write_library
from dynofa_ros.supernet.synthetic import TINY_SPEC, TINY_VIT_SPEC, shipped_or_synthetic
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_round_trip_keeps_every_field(library_copy: Path) -> None:
    lib = SubnetLibrary.load(library_copy)
    assert [lv.name for lv in lib.levels] == ["L0", "L1", "L2", "L3"]
    profile = LatencyProfile("cpu-1t", "cpu", 1, 0.005, 0.006, "median of 100", processor="x", freq_hz=1.2e9)
    lib.levels[1] = Level(lib.levels[1].name, lib.levels[1].arch, 0.5, 10, 20, (profile,))
    lib.save(library_copy)
    again = SubnetLibrary.load(library_copy)
    assert again == lib
    assert again.levels[1].latency_for("cpu-1t") == profile
    assert again.levels[1].latency_for("cuda") is None
    assert again.to_dict() == lib.to_dict()
    assert again.checkpoint_path == library_copy.parent / "supernet.pt"
    assert again.heads_path == library_copy.parent / "heads.pt" and again.heads_fit == "random (synthetic)"


def test_sha256_mismatch_is_detected(library_copy: Path) -> None:
    bn_file = library_copy.parent / "bn_stats.pt"
    data = bytearray(bn_file.read_bytes())
    data[-10] ^= 0xFF
    bn_file.write_bytes(bytes(data))
    with pytest.raises(LibraryError, match="BN statistics file .* sha256"):
        SubnetLibrary.load(library_copy)
    SubnetLibrary.load(library_copy, verify=False)  # metadata alone still reads


def test_missing_referenced_file(library_copy: Path) -> None:
    (library_copy.parent / "supernet.pt").unlink()
    with pytest.raises(LibraryError, match="checkpoint file not found"):
        SubnetLibrary.load(library_copy)


def test_missing_library_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        SubnetLibrary.load(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
        (lambda d: d.pop("levels"), "missing field 'levels'"),
        (lambda d: d.update(levels=[]), "has no levels"),
        (lambda d: d["levels"][1].update(name="L0"), "duplicate level names"),
        (lambda d: d["levels"][0]["arch"].update(ks=[9] * 20), r"arch.ks values \[9"),
        (lambda d: d["levels"][0]["arch"].update(resolution=224), "resolution 224 not in"),
        (lambda d: d["levels"][0]["arch"].pop("d"), "needs ks, e, d and resolution"),
        (lambda d: d["levels"][0].update(top1=87.1), r"top1 must be a fraction in \[0, 1\]"),
        (lambda d: d["levels"][0].update(macs="many"), "macs: expected"),
        (lambda d: d["levels"][0].update(params=-1), "params must be a finite non-negative"),
        (lambda d: d["levels"][0].update(latency=[{"profile": "p", "device": "cpu", "threads": 1, "p50_s": 0.2,
                                                    "p90_s": 0.1, "method": "m"}]), "p90_s 0.1 is below p50_s"),
        (lambda d: d["levels"][0].update(latency=[{"profile": "p", "device": "cpu", "threads": 1, "p50_s": 0.1,
                                                    "p90_s": 0.2, "method": "m", "batch": 0}]),
         "threads and batch must be >= 1"),
        (lambda d: d["supernet"]["checkpoint"].update(sha256="abc"), "not a hex SHA-256"),
        (lambda d: d["supernet"]["spec"].update(family="resnet9"), "unknown supernet family .resnet9."),
        (lambda d: d["supernet"]["spec"].update(colour="red"), "unknown supernet spec fields"),
        (lambda d: d["heads"].pop("sha256"), "heads: missing field 'sha256'"),
        (lambda d: d.update(heads="heads.pt"), "heads: expected"),
    ],
)
def test_invalid_library_is_rejected_with_a_named_problem(library_copy: Path, change, message: str) -> None:
    _edit(library_copy, change)
    with pytest.raises(LibraryError, match=message):
        SubnetLibrary.load(library_copy, verify=False)


def test_a_vit_library_records_its_family_and_has_no_bn_statistics(vit_library_copy: Path) -> None:
    data = json.loads(vit_library_copy.read_text())
    assert data["supernet"]["spec"]["family"] == "elastic_vit" and "bn_stats" not in data and "heads" not in data
    assert sorted(p.name for p in vit_library_copy.parent.iterdir()) == ["library.json", "supernet.pt"]
    lib = SubnetLibrary.load(vit_library_copy)
    assert isinstance(lib.spec, ElasticViTSpec) and (lib.bn_stats, lib.bn_stats_path, lib.heads) == (None, None, None)
    assert all(isinstance(lv.arch, ViTArch) for lv in lib.levels) and lib.calibration == ""
    assert len(lib.levels) >= 4 and len({lv.macs for lv in lib.levels}) == len(lib.levels)
    assert [lv.macs for lv in lib.levels] == sorted(lv.macs for lv in lib.levels)
    lib.save(vit_library_copy)
    assert SubnetLibrary.load(vit_library_copy) == lib


@pytest.mark.parametrize(
    ("copy", "change", "message"),
    [
        ("library_copy", lambda d: d.pop("bn_stats"), "ofa_mbv3 libraries need a BN statistics file"),
        ("vit_library_copy", lambda d: d.update(bn_stats={"path": "bn_stats.pt", "sha256": "0" * 64}),
         r"elastic_vit has no BN statistics, yet the library names a BN statistics file \(bn_stats.pt\)"),
        ("vit_library_copy", lambda d: d["levels"][0]["arch"].update(embed_dim=999), r"arch.embed_dim values \[999\]"),
        ("vit_library_copy", lambda d: d["levels"][0]["arch"].update(ks=[3]), "unknown ViT arch fields"),
    ],
)
def test_bn_statistics_and_archs_follow_the_family(copy: str, change, message: str,
                                                   request: pytest.FixtureRequest) -> None:
    library_json = request.getfixturevalue(copy)
    _edit(library_json, change)
    with pytest.raises(LibraryError, match=message):
        SubnetLibrary.load(library_json, verify=False)


def test_write_library_takes_bn_statistics_exactly_for_a_family_with_them(tmp_path: Path) -> None:
    vit = ElasticViT(TINY_VIT_SPEC)
    level = Level("L0", TINY_VIT_SPEC.smallest(), None, 1, 1)
    with pytest.raises(ValueError, match="elastic_vit libraries have no per-level BN statistics"):
        write_library(tmp_path, "vit", vit, TINY_VIT_SPEC, [level], [{}])
    (tmp_path / "bn_stats.pt").write_bytes(b"left by an earlier library")
    lib = write_library(tmp_path, "vit", vit, TINY_VIT_SPEC, [level])
    assert lib.bn_stats is None and not (tmp_path / "bn_stats.pt").exists()
    with pytest.raises(ValueError, match="ofa_mbv3 libraries need per-level BN statistics"):
        write_library(tmp_path, "ofa", vit, TINY_SPEC, [level])


def test_not_json(library_copy: Path) -> None:
    library_copy.write_text("{ not json")
    with pytest.raises(LibraryError, match="not valid JSON"):
        SubnetLibrary.load(library_copy)


def test_unreadable_library_is_a_library_error(library_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_read_text = Path.read_text

    def denied(self: Path, *args, **kwargs) -> str:
        if self == library_copy:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(LibraryError, match="cannot read subnet library file .*Permission denied"):
        SubnetLibrary.load(library_copy)


def test_absent_batch_means_one(library_copy: Path) -> None:
    _edit(library_copy, lambda d: d["levels"][0].update(latency=[{"profile": "p", "device": "cpu", "threads": 1,
                                                                   "p50_s": 0.1, "p90_s": 0.2, "method": "m"}]))
    assert SubnetLibrary.load(library_copy, verify=False).levels[0].latency[0].batch == 1


def test_index_of(library_copy: Path) -> None:
    lib = SubnetLibrary.load(library_copy)
    assert lib.index_of("L2") == 2
    assert lib.index_of(3) == 3
    with pytest.raises(LibraryError, match="no level named"):
        lib.index_of("L9")
    with pytest.raises(LibraryError, match="out of range"):
        lib.index_of(4)


def test_default_library_path_env_and_share_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "models" / "cifar10_mbv3" / "library.json"
    monkeypatch.setenv("DYNOFA_SHARE_DIR", str(tmp_path))
    monkeypatch.delenv("DYNOFA_LIBRARY", raising=False)
    with pytest.raises(FileNotFoundError, match="library.json") as err:
        default_library_path()
    assert str(target) in str(err.value)
    target.parent.mkdir(parents=True)
    target.write_text("{}")
    assert default_library_path() == target
    monkeypatch.setenv("DYNOFA_LIBRARY", str(tmp_path / "elsewhere.json"))
    with pytest.raises(FileNotFoundError, match="DYNOFA_LIBRARY"):
        default_library_path()
    monkeypatch.setenv("DYNOFA_LIBRARY", str(target))
    assert default_library_path() == target


def test_the_checkout_serves_its_shipped_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNOFA_SHARE_DIR", raising=False)
    monkeypatch.delenv("DYNOFA_LIBRARY", raising=False)
    root = Path(library_mod.__file__).resolve().parents[2]
    assert default_library_path() == root / "models" / "cifar10_mbv3" / "library.json"


@pytest.mark.parametrize(("model", "family"), [("mbv3", "ofa_mbv3"), ("vit", "elastic_vit")])
def test_the_checkout_ships_both_models(model: str, family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DYNOFA_SHARE_DIR", raising=False)
    path = library_path(model)
    lib = SubnetLibrary.load(path)  # checks every file against its recorded SHA-256
    assert lib.spec.family == family and len(lib.levels) >= 4
    assert sum(f.stat().st_size for f in path.parent.iterdir()) <= 15 * 2**20
    served = [lv.latency_for("cpu-1t", "onnxruntime").p50_s for lv in lib.levels]
    assert served == sorted(served) and [lv.top1 for lv in lib.levels] == sorted(lv.top1 for lv in lib.levels)


def test_latency_records_carry_their_backend(library_copy: Path) -> None:
    from dynofa_ros.manager.models import levels_from_library

    lib = SubnetLibrary.load(library_copy)
    eager = LatencyProfile("cpu-1t", "cpu", 1, 0.008, 0.009, "median")
    eager_2t = LatencyProfile("cpu-2t", "cpu", 2, 0.006, 0.007, "median")
    ort = LatencyProfile("cpu-1t", "cpu", 1, 0.002, 0.0025, "median", backend="onnxruntime")
    lib.levels = [Level(lv.name, lv.arch, 0.5 + i / 100, lv.macs, lv.params, (eager, eager_2t, ort))
                  for i, lv in enumerate(lib.levels)]
    lib.save(library_copy)
    again = SubnetLibrary.load(library_copy)
    level = again.levels[0]
    assert level.latency_for("cpu-1t") == eager and level.latency_for("cpu-1t", "onnxruntime") == ort
    assert level.latency_for("cpu-2t", "onnxruntime") is None
    assert level.latency_served("onnxruntime") == {"cpu-1t": ort, "cpu-2t": eager_2t}
    assert level.latency_except(["cpu-1t"], ["onnxruntime"]) == (eager, eager_2t)
    assert levels_from_library(again, "onnxruntime")[0].latency_s == {"cpu-1t": 0.002, "cpu-2t": 0.006}
    assert levels_from_library(again)[0].latency_s == {"cpu-1t": 0.008, "cpu-2t": 0.006}

    _edit(library_copy, lambda d: d["levels"][0]["latency"][2].update(backend="tensorrt-9"))
    with pytest.raises(LibraryError, match="backend"):
        SubnetLibrary.load(library_copy)


def test_library_path_names_a_default_a_shipped_model_or_a_file(tmp_path, monkeypatch) -> None:
    from dynofa_ros.supernet.library import default_library_path, library_path, shipped_library_path

    monkeypatch.delenv("DYNOFA_LIBRARY", raising=False)
    monkeypatch.setenv("DYNOFA_SHARE_DIR", str(tmp_path))
    (tmp_path / "models" / "cifar10_vit").mkdir(parents=True)
    (tmp_path / "models" / "cifar10_vit" / "library.json").write_text("{}")
    assert library_path("vit") == shipped_library_path("vit") == tmp_path / "models" / "cifar10_vit" / "library.json"
    assert shipped_or_synthetic("vit", None) == (library_path("vit"), False)  # the benchmarks' --library
    with pytest.raises(FileNotFoundError, match="cifar10_mbv3"):  # named and missing: no synthetic stand-in
        shipped_or_synthetic("mbv3", tmp_path)
    assert library_path("elsewhere/library.json") == Path("elsewhere/library.json")
    with pytest.raises(FileNotFoundError, match="cifar10_mbv3"):  # named in the message when it is missing
        library_path("")
    with pytest.raises(FileNotFoundError, match="cifar10_mbv3"):
        default_library_path()
    with pytest.raises(ValueError, match="unknown shipped model"):
        shipped_library_path("resnet")
