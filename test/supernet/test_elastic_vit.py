"""Elastic ViT supernet: arch records, in-place forward against extracted static sub-networks, MACs and params,
ONNX export and gradients through shared weights (a tiny spec; the default one only for its budget)."""

from __future__ import annotations

import dataclasses
import json
import random
import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dynofa_ros.supernet.elastic_vit import ElasticViT, ViT
from dynofa_ros.supernet.heads import final_linear
from dynofa_ros.supernet.onnx_export import INPUT, export_onnx
from dynofa_ros.supernet.spec import numbered_classes
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch, vit_macs, vit_params

TINY = ElasticViTSpec(embed_dim_list=(16, 24, 32), depth_list=(1, 2, 3), heads_list=(1, 2), mlp_ratio_list=(1, 1.5, 2),
                      head_dim=8, tokenizer_layers=2, tokenizer_channels=8, num_classes=5, resolutions=(16, 24),
                      class_names=numbered_classes(5))


@pytest.fixture(scope="module")
def net() -> ElasticViT:
    torch.manual_seed(0)
    return ElasticViT(TINY).eval()


def _archs(spec: ElasticViTSpec, n: int, seed: int = 1) -> list[ViTArch]:
    rng = random.Random(seed)
    return [spec.largest(), spec.smallest(), *(spec.sample(rng) for _ in range(n))]


def _images(resolution: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(resolution))


def _logits(net: ElasticViT, arch: ViTArch) -> torch.Tensor:
    net.set_active_subnet(arch)
    with torch.no_grad():
        return net(_images(arch.resolution))


def _grow(spec: ElasticViTSpec) -> list[ViTArch]:
    """From the smallest to the largest arch, one choice larger per step."""
    arch = spec.smallest()
    chain = [arch]
    for e in sorted(spec.embed_dim_list)[1:]:
        chain.append(arch := ViTArch(arch.depth, arch.heads, arch.mlp_ratio, e, arch.resolution))
    for d in sorted(spec.depth_list)[1:]:
        extra = d - arch.depth
        chain.append(arch := ViTArch(d, arch.heads + arch.heads[-1:] * extra,
                                     arch.mlp_ratio + arch.mlp_ratio[-1:] * extra, arch.embed_dim, arch.resolution))
    for i in range(arch.depth):
        for h in sorted(spec.heads_list)[1:]:
            chain.append(arch := ViTArch(arch.depth, arch.heads[:i] + (h,) + arch.heads[i + 1:], arch.mlp_ratio,
                                         arch.embed_dim, arch.resolution))
        for r in sorted(spec.mlp_ratio_list)[1:]:
            chain.append(arch := ViTArch(arch.depth, arch.heads, arch.mlp_ratio[:i] + (r,) + arch.mlp_ratio[i + 1:],
                                         arch.embed_dim, arch.resolution))
    for res in sorted(spec.resolutions)[1:]:
        chain.append(arch := ViTArch(arch.depth, arch.heads, arch.mlp_ratio, arch.embed_dim, res))
    assert arch == spec.largest()
    return chain


# -- records -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [TINY, ElasticViTSpec()], ids=["tiny", "default"])
def test_largest_smallest_and_samples_are_in_the_spec(spec: ElasticViTSpec) -> None:
    archs = _archs(spec, 20)
    for arch in archs:
        arch.validate(spec)
        assert len(arch.heads) == len(arch.mlp_ratio) == arch.depth
    largest, smallest = archs[:2]
    assert largest.embed_dim == max(spec.embed_dim_list) and largest.depth == max(spec.depth_list)
    assert set(largest.heads) == {max(spec.heads_list)} and set(smallest.mlp_ratio) == {min(spec.mlp_ratio_list)}
    assert _archs(spec, 20) == archs  # sampling follows the rng alone
    assert len({a.name for a in archs}) == len(set(archs))


def test_arch_and_spec_round_trip_through_json() -> None:
    for arch in _archs(TINY, 10):
        back = ViTArch.from_dict(json.loads(json.dumps(arch.to_dict())))
        assert back == arch and hash(back) == hash(arch) and back.name == arch.name
    assert ViTArch(1, [2], [2], 16, 24) == ViTArch(1, (2,), (2.0,), 16, 24)
    for spec in (TINY, ElasticViTSpec()):
        assert ElasticViTSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("data", [
    {"depth": 2, "heads": [1], "mlp_ratio": [1, 1], "embed_dim": 16, "resolution": 16},
    {"depth": 0, "heads": [], "mlp_ratio": [], "embed_dim": 16, "resolution": 16},
    {"depth": 1, "heads": [0], "mlp_ratio": [1], "embed_dim": 16, "resolution": 16},
    {"depth": 1, "heads": [1], "mlp_ratio": [-1], "embed_dim": 16, "resolution": 16},
    {"depth": 1, "heads": [1], "mlp_ratio": [1], "embed_dim": 16},
    {"depth": 1, "heads": [1], "mlp_ratio": [1], "embed_dim": 16, "resolution": 16, "kernel": 3},
])
def test_malformed_arch_raises(data: dict) -> None:
    with pytest.raises(ValueError):
        ViTArch.from_dict(data)


@pytest.mark.parametrize("arch", [
    ViTArch(1, (1,), (1.0,), 20, 16),  # embed width
    ViTArch(4, (1,) * 4, (1.0,) * 4, 16, 16),  # depth
    ViTArch(1, (3,), (1.0,), 16, 16),  # heads
    ViTArch(1, (1,), (3.0,), 16, 16),  # mlp ratio
    ViTArch(1, (1,), (1.0,), 16, 32),  # resolution
])
def test_arch_outside_the_spec_raises(net: ElasticViT, arch: ViTArch) -> None:
    with pytest.raises(ValueError, match="not in the supernet"):
        arch.validate(TINY)
    before = net.active_arch
    with pytest.raises(ValueError):
        net.set_active_subnet(arch)
    assert net.active_arch == before


@pytest.mark.parametrize("change", [{"embed_dim_list": ()}, {"depth_list": (0,)}, {"mlp_ratio_list": (0.0,)},
                                    {"head_dim": 0}, {"tokenizer_layers": 0}, {"dropout": 1.0},
                                    {"resolutions": (16.5,)}, {"family": "ofa_mbv3"}, {"num_classes": 5},
                                    {"std": (0.2, 0.2, 0.0)}])
def test_bad_spec_raises(change: dict) -> None:
    with pytest.raises(ValueError):
        ElasticViTSpec(**change)
    with pytest.raises(ValueError, match="unknown"):
        ElasticViTSpec.from_dict({"width": 1})


# -- MACs and params ---------------------------------------------------------------------------------------------


def test_default_spec_budget() -> None:
    spec = ElasticViTSpec()
    largest, smallest = spec.largest(), spec.smallest()
    assert 2e6 <= vit_params(spec, largest) <= 4e6
    assert vit_macs(spec, largest) / vit_macs(spec, smallest) >= 2.5
    macs = [vit_macs(spec, a) for a in _grow(spec)]
    assert all(a < b for a, b in zip(macs, macs[1:]))
    for arch in _archs(spec, 20)[2:]:
        assert vit_macs(spec, smallest) <= vit_macs(spec, arch) <= vit_macs(spec, largest)


def test_default_supernet_is_its_largest_subnet() -> None:
    spec = ElasticViTSpec()
    net = ElasticViT(spec)
    assert sum(p.numel() for p in net.parameters()) == vit_params(spec, spec.largest())


def test_macs_match_a_flop_count(net: ElasticViT) -> None:
    for arch in _archs(TINY, 4):
        net.set_active_subnet(arch)
        x = _images(arch.resolution, batch=1)
        for module in (net, net.get_active_subnet()):
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                module(x)
            assert counter.get_total_flops() == 2 * vit_macs(TINY, arch), arch.name


def test_tiny_macs_grow_one_choice_at_a_time() -> None:
    macs = [vit_macs(TINY, a) for a in _grow(TINY)]
    assert all(a < b for a, b in zip(macs, macs[1:]))


# -- elastic forward against extracted sub-networks --------------------------------------------------------------


def test_in_place_forward_equals_extracted_subnet(net: ElasticViT) -> None:
    for arch in _archs(TINY, 8):
        logits = _logits(net, arch)
        subnet = net.get_active_subnet()
        assert isinstance(subnet, ViT) and not subnet.training
        assert not any(isinstance(m, ElasticViT) for m in subnet.modules())
        with torch.no_grad():
            static = subnet(_images(arch.resolution))
        assert logits.shape == (2, TINY.num_classes)
        assert (logits - static).abs().max() < 1e-5, arch.name


def test_attention_matches_torch_reference(net: ElasticViT) -> None:
    arch = ViTArch(1, (2,), (1.0,), 24, 16)
    net.set_active_subnet(arch)
    layer = net.get_active_subnet().layers[0]
    x = torch.randn(2, 4, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q, k, v = (t.unflatten(-1, (2, 8)).transpose(1, 2) for t in layer.qkv(layer.ln1(x)).chunk(3, dim=-1))
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        y = x + layer.proj(attended)
        reference = y + layer.fc2(torch.nn.functional.gelu(layer.fc1(layer.ln2(y))))
        assert (layer(x) - reference).abs().max() < 1e-5


def test_single_conv_tokenizer_without_position_embedding() -> None:
    spec = dataclasses.replace(TINY, pos_embed=False, tokenizer_layers=1, resolutions=(8,))
    torch.manual_seed(2)
    net = ElasticViT(spec).eval()
    assert net.pos_embed is None
    for arch in _archs(spec, 3):
        logits = _logits(net, arch)
        subnet = net.get_active_subnet()
        assert subnet.pos_embed is None and sum(p.numel() for p in subnet.parameters()) == vit_params(spec, arch)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            assert (subnet(_images(arch.resolution)) - logits).abs().max() < 1e-5
        assert counter.get_total_flops() == 2 * 2 * vit_macs(spec, arch)  # a batch of two


def test_dropout_matches_in_training_mode(net: ElasticViT) -> None:
    arch = _archs(TINY, 1, seed=5)[-1]
    net.set_active_subnet(arch)
    subnet = net.get_active_subnet().train()
    x = _images(arch.resolution)
    try:
        net.train()
        outputs = []
        for module in (net, subnet):
            torch.manual_seed(7)
            with torch.no_grad():
                outputs.append(module(x))
    finally:
        net.eval()
    assert (outputs[0] - outputs[1]).abs().max() < 1e-5


def test_extracted_subnet_has_only_its_parameters_and_its_own_copies(net: ElasticViT) -> None:
    full = sum(p.numel() for p in net.parameters())
    for arch in _archs(TINY, 6):
        net.set_active_subnet(arch)
        subnet = net.get_active_subnet()
        count = sum(p.numel() for p in subnet.parameters())
        assert count == vit_params(TINY, arch)
        assert count < full or (arch == TINY.largest() and count == full)
        assert final_linear(subnet) is subnet.classifier
    arch = TINY.sample(random.Random(3))
    before = _logits(net, arch)
    subnet = net.get_active_subnet()
    supernet_storage = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert not supernet_storage & {p.untyped_storage().data_ptr() for p in subnet.parameters()}
    with torch.no_grad():
        for p in subnet.parameters():
            p.add_(1.0)
    assert torch.equal(_logits(net, arch), before)


def test_switching_arch_leaves_no_state(net: ElasticViT) -> None:
    a, b = TINY.sample(random.Random(11)), TINY.sample(random.Random(12))
    a = ViTArch(a.depth, a.heads, a.mlp_ratio, a.embed_dim, 24)
    b = ViTArch(b.depth, b.heads, b.mlp_ratio, b.embed_dim, 16)
    expected = {}
    for arch in (a, b):
        net.set_active_subnet(arch)
        with torch.no_grad():
            expected[arch] = net.get_active_subnet()(_images(arch.resolution))
    for arch in (a, b, a, TINY.largest(), b, TINY.smallest(), a):
        logits = _logits(net, arch)
        if arch in expected:
            assert (logits - expected[arch]).abs().max() < 1e-5
    net.set_max_net()
    assert net.active_arch == TINY.largest()
    net.set_min_net()
    assert net.active_arch == TINY.smallest()
    arch = net.sample_active_subnet(random.Random(4))
    assert net.active_arch == arch == TINY.sample(random.Random(4))


def test_extracted_subnet_runs_in_onnx_runtime(net: ElasticViT, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    arch = ViTArch(2, (2, 1), (1.5, 2.0), 24, 16)
    net.set_active_subnet(arch)
    subnet = net.get_active_subnet()
    x = _images(arch.resolution, batch=1)
    with torch.no_grad():
        expected = subnet(x).numpy()
    path = tmp_path / "vit.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(subnet, (x,), str(path), dynamo=False, input_names=["input"], output_names=["logits"],
                          opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    assert abs(logits - expected).max() < 1e-4
    batch = _images(arch.resolution, batch=3)  # the package's exporter: dynamic batch
    session = ort.InferenceSession(str(export_onnx(subnet, arch.resolution, tmp_path / "dynamic.onnx")),
                                   providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert abs(session.run(None, {INPUT: batch.numpy()})[0] - subnet(batch).numpy()).max() < 1e-4


def test_gradients_reach_the_shared_weights_of_the_active_slices() -> None:
    torch.manual_seed(1)
    net = ElasticViT(TINY).train()
    arch = ViTArch(2, (1, 2), (1.0, 2.0), 24, 16)
    net.set_active_subnet(arch)
    loss = torch.nn.functional.cross_entropy(net(_images(16)), torch.tensor([0, 3]))
    loss.backward()
    first = net.layers[0]
    assert first.qkv.weight.grad is not None
    qkv = first.qkv.weight.grad.unflatten(0, (3, -1))
    assert qkv[:, :8, :24].abs().sum(dim=(1, 2)).min() > 0  # q, k and v of the active head
    assert qkv[:, 8:].abs().sum() == 0 and qkv[:, :, 24:].abs().sum() == 0
    assert first.fc1.weight.grad[:24, :24].abs().sum() > 0 and first.fc1.weight.grad[24:].abs().sum() == 0
    assert net.layers[1].fc1.weight.grad[:48].abs().sum() > 0
    assert net.tokenizer.convs[-1].weight.grad[24:].abs().sum() == 0
    assert net.tokenizer.convs[0].weight.grad.abs().sum() > 0
    assert net.pos_embed.weight.grad[..., :24].abs().sum() > 0  # through the resize to the 16 px grid
    assert net.classifier.weight.grad[:, :24].abs().sum() > 0 and net.classifier.weight.grad[:, 24:].abs().sum() == 0
    assert all(p.grad is None for p in net.layers[2].parameters())
