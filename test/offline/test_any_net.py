"""The offline stage for a published OFA supernet and an ImageFolder of photos: the spec options, the adapt stage,
the whole pipeline (scaled down: a random w1.2 supernet at 64/96 px), and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from dynofa_ros.datasets.image_dataset import load_split
from dynofa_ros.datasets.synthetic import write_synthetic_folder
from dynofa_ros.offline import cli
from dynofa_ros.offline.adapt import adapt_to_dataset, with_classes
from dynofa_ros.offline.cli import build_parser, main
from dynofa_ros.offline.commands.options import requested_spec
from dynofa_ros.offline.data import scaled_batch, to_input
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.heads import final_linear
from dynofa_ros.supernet.library import SubnetLibrary
from dynofa_ros.supernet.runtime import DynamicNetwork
from dynofa_ros.supernet.spec import PUBLISHED_NETS, SupernetSpec, build_supernet

W12 = "ofa_mbv3_d234_e346_k357_w1.2"
SMALL = ["--net-resolutions", "64", "96"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random w1.2 supernet saved as the published checkpoints are: ``{'state_dict': ...}``."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ofa") / f"{W12}.pth"
    torch.save({"state_dict": build_supernet(PUBLISHED_NETS[W12]).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three learnable classes of mixed-size photos around 110 px, train/ and val/."""
    return write_synthetic_folder(tmp_path_factory.mktemp("photos") / "photos", classes=3, train_per_class=16,
                                  test_per_class=4, size=110)


def test_named_and_explicit_specs() -> None:
    parse = build_parser().parse_args
    assert requested_spec(parse(["profile"])) is None  # the checkpoint's own
    spec = requested_spec(parse(["profile", "--net", W12]))
    assert (spec.width_mult, spec.num_classes, spec.resolutions) == (1.2, 1000, (128, 160, 192, 224))
    custom = requested_spec(parse(["profile", "--net", W12, "--net-classes", "5", "--net-ks", "3", "5", *SMALL]))
    assert custom.ks_list == (3, 5) and custom.resolutions == (64, 96) and len(custom.class_names) == 5
    assert requested_spec(parse(["profile", "--net-width", "0.75"])).width_mult == 0.75  # cifar10's, narrower


def test_a_published_checkpoint_needs_its_net_named(published: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--checkpoint", str(published), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--net" in err
    assert main(["profile", "--checkpoint", str(published), "--net", "ofa_mbv3_d234_e346_k357_w1.0", "--out",
                 str(tmp_path)]) == 2  # the wrong width: shapes do not fit
    assert "wrong shape" in capsys.readouterr().err


def test_adapt_keeps_every_weight_but_the_classifier(published: Path, photos: Path) -> None:
    supernet, spec = load_supernet(published, PUBLISHED_NETS[W12])
    net, new_spec = with_classes(supernet, spec, ("a", "b", "c"))
    assert new_spec.num_classes == 3 and final_linear(net).out_features == 3
    old, new = supernet.state_dict(), net.state_dict()
    kept = [k for k in new if new[k].shape == old[k].shape]
    assert len(kept) == len(new) - 2 and all(torch.equal(new[k], old[k]) for k in kept)
    same, same_spec = with_classes(supernet, spec, tuple(f"n{i}" for i in range(1000)))
    assert same is supernet and same_spec.class_names[0] == "n0"
    data = load_split(photos, "train", 64)
    small = SupernetSpec(**{**spec.to_dict(), "resolutions": (64,)})
    adapted = adapt_to_dataset(supernet, small, data.class_names, data.x, data.y, n_calib=48)
    assert adapted.classifier and adapted.spec.class_names == ("class_0", "class_1", "class_2")
    for key in ("first_conv.bn.running_mean", "blocks.1.conv.point_linear.bn.bn.running_var"):
        assert torch.equal(adapted.supernet.state_dict()[key], old[key])  # its own BN statistics are kept


def test_pipeline_builds_a_library_for_a_published_net_and_photos(published: Path, photos: Path,
                                                                  tmp_path: Path) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = main(["pipeline", "--net", W12, *SMALL, "--checkpoint", str(published), "--data", str(photos),
                   "--cache-dir", str(tmp_path / "cache"), "--work", str(tmp_path / "work"),
                   "--out", str(tmp_path / "lib"),
                   "--adapt-args", "--n-calib 24",
                   "--profile-args", "--repeats 2 --rounds 1 --warmup 1 --fit 3 --holdout 3",
                   "--search-args", "--random-candidates 10 --population 12 --generations 2 --constraints 3 "
                   "--repeats 2 --warmup 1 --n-calib 24",
                   "--build-library-args", "--levels 3 --profiles cpu-1t --repeats 3 --warmup 1 --rounds 1 "
                   "--n-calib 24 --tune-bn-epochs 0.2"])
    out = printed.getvalue()
    print(out)
    assert rc == 0
    assert "stage wall times: adapt" in out and "a new 3-class classifier" in out
    lib = SubnetLibrary.load(tmp_path / "lib" / "library.json")
    assert lib.spec.width_mult == 1.2 and lib.spec.resolutions == (64, 96)
    assert lib.spec.class_names == ("class_0", "class_1", "class_2") and lib.name == "photos-ofa-mbv3-w1.2"
    assert lib.eval_set == "photos-test (12 images)" and "photos-train images" in lib.calibration
    assert len(lib.levels) >= 1 and all(lv.latency_for("cpu-1t") for lv in lib.levels)
    search = json.loads((tmp_path / "work" / "search.json").read_text())
    assert search["spec"] == lib.spec.to_dict()  # the spec is recorded in what each stage writes
    lut = json.loads((tmp_path / "work" / "profile" / "lut_cpu-1t.json").read_text())
    assert lut["spec"]["width_mult"] == 1.2
    # the runtime serves it with the dataset's labels, and its levels give the top-1 the build recorded on the
    # test photos (fed as the build fed them: the stored 96-px images resized in torch)
    net = DynamicNetwork.from_library(lib)
    test = load_split(photos, "test", 96)
    assert {net.classify(x).labels[0] for x in test.x} <= set(lib.spec.class_names)
    for i, level in enumerate(lib.levels):
        net.activate(i)
        batch = to_input(torch.from_numpy(test.x), level.arch.resolution, lib.spec.mean, lib.spec.std)
        correct = (net.predict(batch).argmax(1).numpy() == test.y).mean()
        assert correct == pytest.approx(level.top1)


def test_running_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    def exhausted(_args: object) -> int:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: not enough memory: you tried "
                           "to allocate 12845056000 bytes.\nmore detail")

    parser = build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["measure"].set_defaults(func=exhausted)
    assert main(["measure", "--library", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of memory" in err[0] and "--tune-bn-batch" in err[0]


def test_batches_shrink_with_resolution() -> None:
    assert scaled_batch(500, 64) == 500 and scaled_batch(256, 40) == 256  # CIFAR sizes unchanged
    assert scaled_batch(256, 224) == 20 and scaled_batch(500, 128) == 125 and scaled_batch(16, 1024) == 8
