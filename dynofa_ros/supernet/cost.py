"""Multiply-accumulates and parameters of a sub-network of either supernet family, counted on its extracted
network (the offline tool's records and the random-weight libraries count them the same way)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dynofa_ros.supernet.family import ELASTIC_VIT, OFA_MBV3, Arch, family_of_arch
from dynofa_ros.supernet.vit_arch import vit_macs


def _ofa_macs(_supernet: nn.Module, arch: Arch, subnet: nn.Module) -> int:
    from ofa.utils import count_net_flops

    return int(count_net_flops(subnet, (1, 3, arch.resolution, arch.resolution)))


# multiply-accumulates of one image through an extracted sub-network (supernet, arch, subnet), per family
MAC_COUNTERS: dict[str, Callable[[nn.Module, Arch, nn.Module], int]] = {
    OFA_MBV3.name: _ofa_macs,
    ELASTIC_VIT.name: lambda supernet, arch, _subnet: vit_macs(supernet.spec, arch),
}


def subnet_cost(supernet: nn.Module, arch: Arch) -> tuple[int, int]:
    """(MACs, parameters) of the extracted sub-network at ``arch.resolution`` (ofa_mbv3: ``ofa``'s counter;
    elastic_vit: :func:`~dynofa_ros.supernet.vit_arch.vit_macs`, attention products included)."""
    family = family_of_arch(arch)
    subnet = family.extract(supernet, arch)
    return int(MAC_COUNTERS[family.name](supernet, arch, subnet)), sum(p.numel() for p in subnet.parameters())
