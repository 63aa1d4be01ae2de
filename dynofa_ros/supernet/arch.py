"""Sub-network architecture record: per-block kernel/expand, per-stage depth, resolution."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only apply() and switch_plan() take a module: the record itself loads without torch
    from torch import nn

from dynofa_ros.supernet.spec import SupernetSpec


@dataclass(frozen=True)
class SubnetArch:
    """One sub-network of a supernet.

    ``ks`` and ``e`` hold one value per elastic block (``spec.n_blocks``), ``d`` one
    depth per stage; blocks beyond a stage's depth are inactive and their ks/e ignored.
    """

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    resolution: int

    def validate(self, spec: SupernetSpec) -> None:
        """Raise ValueError naming the first field outside ``spec``'s search space."""
        checks = (
            ("ks", self.ks, spec.n_blocks, spec.ks_list),
            ("e", self.e, spec.n_blocks, spec.expand_list),
            ("d", self.d, spec.n_stages, spec.depth_list),
        )
        for name, values, length, allowed in checks:
            if len(values) != length:
                raise ValueError(f"arch.{name} has {len(values)} entries, the supernet needs {length}")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"arch.{name} values {bad} not in the supernet's {list(allowed)}")
        if self.resolution not in spec.resolutions:
            raise ValueError(f"arch.resolution {self.resolution} not in {list(spec.resolutions)}")

    def active_blocks(self, spec: SupernetSpec) -> list[int]:
        """Indices (into ks/e) of the blocks this subnet runs."""
        per_stage = max(spec.depth_list)
        return [s * per_stage + i for s, depth in enumerate(self.d) for i in range(depth)]

    def canonical(self, spec: SupernetSpec) -> SubnetArch:
        """Same network with inactive blocks' ks/e set to the smallest choice (for dedup)."""
        active = set(self.active_blocks(spec))
        ks = tuple(k if i in active else min(spec.ks_list) for i, k in enumerate(self.ks))
        e = tuple(v if i in active else min(spec.expand_list) for i, v in enumerate(self.e))
        return SubnetArch(ks, e, self.d, self.resolution)

    def apply(self, supernet: nn.Module) -> None:
        """Make this the supernet's active sub-network (architecture only)."""
        supernet.set_active_subnet(ks=list(self.ks), e=list(self.e), d=list(self.d))

    def switch_plan(self, supernet: nn.Module) -> Callable[[], None]:
        """Apply this arch; return a call that makes it active again by replaying the attribute values ``ofa``'s
        ``set_active_subnet`` wrote for it (recorded from this real call) as plain dict updates."""
        self.apply(supernet)
        names = ("active_kernel_size", "active_expand_ratio")
        attributes = [(vars(block.conv), {n: vars(block.conv)[n] for n in names}) for block in supernet.blocks[1:]]
        depth = list(supernet.runtime_depth)

        def switch() -> None:
            for target, values in attributes:
                target.update(values)
            supernet.runtime_depth[:] = depth

        return switch

    def to_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "resolution": self.resolution}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SubnetArch:
        try:
            return cls(tuple(data["ks"]), tuple(data["e"]), tuple(data["d"]), int(data["resolution"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"subnet arch needs ks, e, d and resolution: {exc}") from exc

    @classmethod
    def largest(cls, spec: SupernetSpec) -> SubnetArch:
        n = spec.n_blocks
        return cls((max(spec.ks_list),) * n, (max(spec.expand_list),) * n,
                   (max(spec.depth_list),) * spec.n_stages, max(spec.resolutions))

    @classmethod
    def smallest(cls, spec: SupernetSpec) -> SubnetArch:
        n = spec.n_blocks
        return cls((min(spec.ks_list),) * n, (min(spec.expand_list),) * n,
                   (min(spec.depth_list),) * spec.n_stages, min(spec.resolutions))

    @classmethod
    def sample(cls, spec: SupernetSpec, rng: random.Random) -> SubnetArch:
        n = spec.n_blocks
        return cls(
            tuple(rng.choice(spec.ks_list) for _ in range(n)),
            tuple(rng.choice(spec.expand_list) for _ in range(n)),
            tuple(rng.choice(spec.depth_list) for _ in range(spec.n_stages)),
            rng.choice(spec.resolutions),
        )
