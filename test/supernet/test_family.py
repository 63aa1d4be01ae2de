"""Supernet families: spec and arch records round-trip through their family, old records load as ofa_mbv3, either
family's sub-networks are applied and extracted alike, and checkpoints of an elastic ViT keep its logits."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dynofa_ros.supernet.checkpoint import CheckpointError, load_supernet, save_supernet
from dynofa_ros.supernet.family import (
    ELASTIC_VIT,
    FAMILIES,
    NAMED_NETS,
    OFA_MBV3,
    Family,
    Spec,
    family_of,
    named_spec,
    spec_from_dict,
)
from dynofa_ros.supernet.spec import SupernetSpec, numbered_classes
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch, vit_macs

TINY_VIT = ElasticViTSpec(embed_dim_list=(16, 24), depth_list=(1, 2), heads_list=(1, 2), mlp_ratio_list=(1, 2),
                          head_dim=8, tokenizer_channels=8, num_classes=3, resolutions=(16, 24),
                          class_names=("a", "b", "c"))
TINY_OFA = SupernetSpec(num_classes=3, class_names=("a", "b", "c"), resolutions=(32, 40))
SPECS = {OFA_MBV3.name: TINY_OFA, ELASTIC_VIT.name: TINY_VIT}


def _images(resolution: int) -> torch.Tensor:
    return torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(resolution))


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES)
def test_specs_and_archs_round_trip_through_their_family(family: Family) -> None:
    spec = SPECS[family.name]
    record = json.loads(json.dumps(spec.to_dict()))
    assert record["family"] == family.name
    assert spec_from_dict(record) == spec and family_of(spec) is family
    rng = random.Random(0)
    for arch in (family.largest(spec), family.smallest(spec), *(family.sample(spec, rng) for _ in range(5))):
        assert isinstance(arch, family.arch_type)
        assert family.arch_type.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
        assert arch.resolution in spec.resolutions


def test_a_spec_record_without_family_is_ofa_mbv3() -> None:
    record = TINY_OFA.to_dict()
    del record["family"]
    assert spec_from_dict(record) == TINY_OFA


@pytest.mark.parametrize(("record", "message"), [
    ({"family": "resnet50"}, "unknown supernet family 'resnet50'; known: ofa_mbv3, elastic_vit"),
    ({"family": "elastic_vit", "ks_list": [3]}, "unknown elastic ViT spec fields: \\['ks_list'\\]"),
    ({"embed_dim_list": [16]}, "unknown supernet spec fields: \\['embed_dim_list'\\]"),
    (["ofa_mbv3"], "a supernet spec record is a mapping"),
])
def test_bad_spec_records_are_named(record: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec_from_dict(record)


def test_named_nets_of_both_families() -> None:
    assert named_spec("cifar10") == SupernetSpec()
    vit = named_spec("vit-cifar10-cpu")
    assert isinstance(vit, ElasticViTSpec) and family_of(vit) is ELASTIC_VIT
    assert vit.resolutions == (32,) and vit.num_classes == 10 and vit.class_names == SupernetSpec().class_names
    assert (vit.mean, vit.std) == (SupernetSpec().mean, SupernetSpec().std)
    largest, smallest = vit_macs(vit, vit.largest()), vit_macs(vit, vit.smallest())
    assert largest >= 2.5 * smallest
    sizes = {vit_macs(vit, vit.sample(random.Random(seed))) for seed in range(20)}
    assert len(sizes | {largest, smallest}) >= 4
    with pytest.raises(ValueError, match="unknown net 'vit'; known: cifar10, .*, vit-cifar10-cpu"):
        named_spec("vit")
    assert all(family_of(spec).name == spec.family for spec in NAMED_NETS.values())


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES)
def test_apply_runs_in_place_what_extract_copies_out(family: Family) -> None:
    spec = SPECS[family.name]
    torch.manual_seed(0)
    supernet = family.build(spec).eval()
    for arch in (family.smallest(spec), family.sample(spec, random.Random(1)), family.largest(spec)):
        family.apply(supernet, arch)
        with torch.no_grad():
            in_place = supernet(_images(arch.resolution))
        subnet = family.extract(supernet, arch)
        assert not subnet.training
        assert sum(p.numel() for p in subnet.parameters()) <= sum(p.numel() for p in supernet.parameters())
        with torch.no_grad():
            torch.testing.assert_close(subnet(_images(arch.resolution)), in_place, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES.values(), ids=FAMILIES)
def test_a_switch_plan_makes_its_arch_active_again(family: Family) -> None:
    spec = SPECS[family.name]
    torch.manual_seed(0)
    supernet = family.build(spec).eval()
    archs = [family.smallest(spec), family.largest(spec), family.sample(spec, random.Random(2))]
    plans = [family.switch_plan(supernet, arch) for arch in archs]
    expected = []
    with torch.no_grad():
        for arch in archs:
            family.apply(supernet, arch)
            expected.append(supernet(_images(arch.resolution)))
        for i in (2, 0, 1, 2, 1, 0):
            plans[i]()
            assert torch.equal(supernet(_images(archs[i].resolution)), expected[i])


def _fp16_weights(spec: Spec) -> torch.nn.Module:
    """A fresh supernet whose weights are fp16 numbers, as the checkpoint stores them."""
    torch.manual_seed(3)
    supernet = family_of(spec).build(spec)
    with torch.no_grad():
        for tensor in supernet.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return supernet.eval()


def test_vit_checkpoint_keeps_spec_and_logits(tmp_path: Path) -> None:
    supernet = _fp16_weights(TINY_VIT)
    path = tmp_path / "vit.pt"
    save_supernet(path, supernet, TINY_VIT)
    assert torch.load(path, weights_only=True)["spec"]["family"] == "elastic_vit"
    loaded, spec = load_supernet(path)
    assert spec == TINY_VIT and not loaded.training
    for arch in (TINY_VIT.largest(), TINY_VIT.smallest(), ViTArch(2, (2, 1), (1.0, 2.0), 16, 24)):
        supernet.set_active_subnet(arch)
        loaded.set_active_subnet(arch)
        with torch.no_grad():
            assert torch.equal(loaded(_images(arch.resolution)), supernet(_images(arch.resolution)))
    assert load_supernet(path, TINY_VIT)[1] == TINY_VIT
    with pytest.raises(CheckpointError, match="spec differs.*'num_classes': \\(3, 5\\)"):
        load_supernet(path, replace(TINY_VIT, num_classes=5, class_names=numbered_classes(5)))
    with pytest.raises(CheckpointError, match="spec differs.*'family': \\('elastic_vit', 'ofa_mbv3'\\)"):
        load_supernet(path, TINY_OFA)


def test_vit_weights_that_do_not_fit_the_spec_are_named(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save(_fp16_weights(TINY_VIT).state_dict(), path)
    wider = replace(TINY_VIT, embed_dim_list=(16, 32))
    with pytest.raises(CheckpointError, match="wrong shape for spec \\(embed_dim_list \\[16, 32\\]"):
        load_supernet(path, wider)
    with pytest.raises(CheckpointError, match="does not fit elastic_vit .*missing keys \\(layers\\.2\\."):
        load_supernet(path, replace(TINY_VIT, depth_list=(1, 3)))
