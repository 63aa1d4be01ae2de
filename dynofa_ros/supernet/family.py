"""Supernet families: what training and checkpoints need of each, looked up by a spec's ``family``.

A family is a spec record type, an arch record type and the operations on its supernet. Every spec has
``family``, ``num_classes``, ``class_names``, ``mean``, ``std`` and ``resolutions`` fields and ``to_dict``; every
arch has a ``resolution`` field, ``to_dict`` and ``from_dict``. The records load without torch.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from dynofa_ros.supernet import spec as ofa_spec
from dynofa_ros.supernet import vit_arch
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.spec import SupernetSpec, build_supernet
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch

if TYPE_CHECKING:
    from torch import nn

Spec = SupernetSpec | ElasticViTSpec
Arch = SubnetArch | ViTArch


@dataclass(frozen=True)
class Family:
    """One supernet family.

    ``build(spec)`` makes an untrained supernet; ``largest``/``smallest(spec)`` and ``sample(spec, rng)`` give
    archs; ``apply(supernet, arch)`` makes an arch the supernet's active sub-network in place; ``extract(supernet,
    arch)`` returns it as a standalone eval-mode network with copies of its weights. ``bn_statistics``: its
    sub-networks have batch norms whose statistics must be recalibrated per sub-network before evaluating one.
    ``optimizer``: what its training uses unless told otherwise (``sgd`` or ``adamw``). ``switch_plan(supernet,
    arch)`` applies an arch and returns a call that makes it active again as cheaply as the family allows (the
    in-place runtime's switch between levels; the supernet must stay on its device). ``title``: what plots call it.
    """

    name: str
    spec_type: type[Spec]
    arch_type: type[Arch]
    build: Callable[[Any], nn.Module]
    largest: Callable[[Any], Arch]
    smallest: Callable[[Any], Arch]
    sample: Callable[[Any, random.Random], Arch]
    apply: Callable[[nn.Module, Any], None]
    extract: Callable[[nn.Module, Any], nn.Module]
    bn_statistics: bool
    optimizer: str
    switch_plan: Callable[[nn.Module, Any], Callable[[], None]]
    title: str


def _extract_ofa(supernet: nn.Module, arch: SubnetArch) -> nn.Module:
    arch.apply(supernet)
    return supernet.get_active_subnet(preserve_weight=True).eval()


def _build_vit(spec: ElasticViTSpec) -> nn.Module:
    from dynofa_ros.supernet.elastic_vit import ElasticViT

    return ElasticViT(spec)


def _extract_vit(supernet: nn.Module, arch: ViTArch) -> nn.Module:
    supernet.set_active_subnet(arch)
    return supernet.get_active_subnet().eval()


def _switch_plan_vit(supernet: nn.Module, arch: ViTArch) -> Callable[[], None]:
    supernet.set_active_subnet(arch)
    return partial(supernet.set_active_subnet, arch)


OFA_MBV3 = Family("ofa_mbv3", SupernetSpec, SubnetArch, build_supernet, SubnetArch.largest, SubnetArch.smallest,
                  SubnetArch.sample, lambda supernet, arch: arch.apply(supernet), _extract_ofa, bn_statistics=True,
                  optimizer="sgd", switch_plan=lambda supernet, arch: arch.switch_plan(supernet),
                  title="OFA MobileNetV3")
ELASTIC_VIT = Family(vit_arch.FAMILY, ElasticViTSpec, ViTArch, _build_vit, ElasticViTSpec.largest,
                     ElasticViTSpec.smallest, ElasticViTSpec.sample,
                     lambda supernet, arch: supernet.set_active_subnet(arch), _extract_vit, bn_statistics=False,
                     optimizer="adamw", switch_plan=_switch_plan_vit, title="elastic ViT")
FAMILIES: dict[str, Family] = {f.name: f for f in (OFA_MBV3, ELASTIC_VIT)}

NAMED_NETS: dict[str, Spec] = {**ofa_spec.NAMED_NETS, **vit_arch.NAMED_NETS}
NET_NAMES = tuple(NAMED_NETS)


def family_named(name: str) -> Family:
    """The family called ``name``; ValueError naming the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown supernet family {name!r}; known: {', '.join(FAMILIES)}") from None


def family_of(spec: Spec) -> Family:
    return family_named(spec.family)


def spec_from_dict(data: dict[str, Any]) -> Spec:
    """The spec a ``to_dict`` record describes, of the family its ``family`` field names (ofa_mbv3 without one, as in
    the records written before there were other families)."""
    if not isinstance(data, dict):
        raise ValueError(f"a supernet spec record is a mapping, got {type(data).__name__}")
    return family_named(data.get("family", OFA_MBV3.name)).spec_type.from_dict(data)


def named_spec(name: str) -> Spec:
    """The spec called ``name`` in :data:`NAMED_NETS`; ValueError naming the known ones."""
    try:
        return NAMED_NETS[name]
    except KeyError:
        raise ValueError(f"unknown net {name!r}; known: {', '.join(NET_NAMES)}") from None


def family_of_arch(arch: Arch) -> Family:
    """The family whose arch records ``arch`` is one of; TypeError for anything else."""
    for family in FAMILIES.values():
        if isinstance(arch, family.arch_type):
            return family
    raise TypeError(f"{type(arch).__name__} is no supernet family's arch record")
