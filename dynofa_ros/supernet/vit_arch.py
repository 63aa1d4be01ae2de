"""Elastic vision Transformer records: the supernet spec, one sub-network's architecture, their MACs and params.

The family is a Compact Convolutional Transformer (CCT): a small convolutional tokenizer, pre-LN encoder layers
and attention-based sequence pooling, made elastic in embed width, depth, heads per layer and MLP width per layer.
These records load without torch; the modules are in :mod:`dynofa_ros.supernet.elastic_vit`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from dynofa_ros.supernet.spec import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, check_labels_and_normalisation

FAMILY = "elastic_vit"
KERNEL = 3  # every tokenizer conv: kernel 3, stride 1, padding 1, then ReLU and max-pool 3 / stride 2 / padding 1


def pooled_side(side: int) -> int:
    """Feature-map side after one tokenizer stage (the conv keeps it, the max-pool 3/2/1 halves it, rounding up)."""
    return (side - 1) // 2 + 1


def mlp_hidden(embed_dim: int, ratio: float) -> int:
    """MLP hidden units of a layer at ``embed_dim`` and ``ratio`` (the first ones of the supernet's MLP)."""
    return round(ratio * embed_dim)


@dataclass(frozen=True)
class ViTArch:
    """One sub-network: the first ``depth`` layers, the first ``embed_dim`` channels everywhere, in layer ``i`` the
    first ``heads[i]`` heads and the first ``mlp_hidden(embed_dim, mlp_ratio[i])`` MLP units; ``resolution`` px."""

    depth: int
    heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    embed_dim: int
    resolution: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "mlp_ratio", tuple(float(r) for r in self.mlp_ratio))
        for name in ("depth", "embed_dim", "resolution"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"arch.{name} must be a positive integer, got {getattr(self, name)!r}")
        if len(self.heads) != self.depth or len(self.mlp_ratio) != self.depth:
            raise ValueError(f"arch needs one heads and one mlp_ratio entry per layer ({self.depth}), got "
                             f"{len(self.heads)} and {len(self.mlp_ratio)}")
        if any(h <= 0 for h in self.heads) or any(r <= 0 for r in self.mlp_ratio):
            raise ValueError(f"arch heads {list(self.heads)} and mlp_ratio {list(self.mlp_ratio)} must be positive")

    @property
    def hidden(self) -> tuple[int, ...]:
        """MLP hidden units per active layer."""
        return tuple(mlp_hidden(self.embed_dim, r) for r in self.mlp_ratio)

    @property
    def name(self) -> str:
        """Canonical short name, e.g. ``e128_d2_h2-4_m1-1.5_r32``."""
        heads = "-".join(str(h) for h in self.heads)
        ratios = "-".join(f"{r:g}" for r in self.mlp_ratio)
        return f"e{self.embed_dim}_d{self.depth}_h{heads}_m{ratios}_r{self.resolution}"

    def canonical(self, spec: ElasticViTSpec) -> ViTArch:
        """Itself: a ViT arch holds the choices of its active layers only, so equal sub-networks are equal records."""
        return self

    def validate(self, spec: ElasticViTSpec) -> None:
        """Raise ValueError naming the first field outside ``spec``'s search space."""
        checks = (
            ("embed_dim", (self.embed_dim,), spec.embed_dim_list),
            ("depth", (self.depth,), spec.depth_list),
            ("heads", self.heads, spec.heads_list),
            ("mlp_ratio", self.mlp_ratio, spec.mlp_ratio_list),
            ("resolution", (self.resolution,), spec.resolutions),
        )
        for name, values, allowed in checks:
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"arch.{name} values {bad} not in the supernet's {list(allowed)}")

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "heads": list(self.heads), "mlp_ratio": list(self.mlp_ratio),
                "embed_dim": self.embed_dim, "resolution": self.resolution}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViTArch:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ViT arch fields: {sorted(unknown)}")
        try:
            return cls(int(data["depth"]), tuple(data["heads"]), tuple(data["mlp_ratio"]), int(data["embed_dim"]),
                       int(data["resolution"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"ViT arch needs depth, heads, mlp_ratio, embed_dim and resolution: {exc!r}") from exc


@dataclass(frozen=True)
class ElasticViTSpec:
    """Everything needed to rebuild an elastic ViT supernet and feed it images.

    ``head_dim`` is fixed, so a layer's attention width is ``heads * head_dim`` whatever the embed width. The
    tokenizer has ``tokenizer_layers`` convs: the inner ones ``tokenizer_channels`` wide (as CCT), the last one
    ``max(embed_dim_list)`` wide, used at the active embed width. The default's largest sub-network is CCT-7/3x2
    (embed 256, 7 layers, 4 heads, MLP ratio 2, 64 tokens at 32 px). ``resolutions`` are the input sizes (pixels,
    square), ``mean``/``std`` the per-channel RGB normalisation of images scaled to [0, 1], as in
    :class:`~dynofa_ros.supernet.spec.SupernetSpec`.
    """

    family: str = FAMILY
    embed_dim_list: tuple[int, ...] = (128, 192, 256)
    depth_list: tuple[int, ...] = (4, 5, 6, 7)
    heads_list: tuple[int, ...] = (2, 3, 4)
    mlp_ratio_list: tuple[float, ...] = (1.0, 1.5, 2.0)
    head_dim: int = 64
    tokenizer_layers: int = 2
    tokenizer_channels: int = 64
    pos_embed: bool = True
    num_classes: int = 10
    resolutions: tuple[int, ...] = (32,)
    dropout: float = 0.1
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    class_names: tuple[str, ...] = CIFAR10_CLASSES

    def __post_init__(self) -> None:
        if self.family != FAMILY:
            raise ValueError(f"an elastic ViT spec has family {FAMILY!r}, got {self.family!r}")
        object.__setattr__(self, "mlp_ratio_list", tuple(float(r) for r in self.mlp_ratio_list))
        for name in ("embed_dim_list", "depth_list", "heads_list", "resolutions"):
            values = getattr(self, name)
            if not values or any(int(v) != v or v <= 0 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
        if not self.mlp_ratio_list or any(r <= 0 for r in self.mlp_ratio_list):
            raise ValueError(f"mlp_ratio_list must be a non-empty list of positive ratios, got {self.mlp_ratio_list}")
        if mlp_hidden(min(self.embed_dim_list), min(self.mlp_ratio_list)) < 1:
            raise ValueError("the smallest embed width and MLP ratio leave no MLP hidden units")
        for name in ("head_dim", "tokenizer_layers", "tokenizer_channels", "num_classes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_labels_and_normalisation(self.num_classes, self.class_names, self.mean, self.std)

    @property
    def max_embed_dim(self) -> int:
        return max(self.embed_dim_list)

    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def max_heads(self) -> int:
        return max(self.heads_list)

    @property
    def max_hidden(self) -> int:
        return max(mlp_hidden(e, r) for e in self.embed_dim_list for r in self.mlp_ratio_list)

    def token_grid(self, resolution: int) -> int:
        """Tokens per side of the tokenizer's output for a ``resolution`` px input."""
        side = resolution
        for _ in range(self.tokenizer_layers):
            side = pooled_side(side)
        return side

    def largest(self) -> ViTArch:
        d = self.max_depth
        return ViTArch(d, (self.max_heads,) * d, (max(self.mlp_ratio_list),) * d, self.max_embed_dim,
                       max(self.resolutions))

    def smallest(self) -> ViTArch:
        d = min(self.depth_list)
        return ViTArch(d, (min(self.heads_list),) * d, (min(self.mlp_ratio_list),) * d, min(self.embed_dim_list),
                       min(self.resolutions))

    def sample(self, rng: random.Random) -> ViTArch:
        """A sub-network drawn uniformly per choice (embed width, depth, then heads and MLP ratio per layer)."""
        embed, depth = rng.choice(self.embed_dim_list), rng.choice(self.depth_list)
        heads = tuple(rng.choice(self.heads_list) for _ in range(depth))
        ratios = tuple(rng.choice(self.mlp_ratio_list) for _ in range(depth))
        return ViTArch(depth, heads, ratios, embed, rng.choice(self.resolutions))

    def mutate(self, arch: ViTArch, rng: random.Random, prob: float) -> ViTArch:
        """``arch`` with each choice (embed width, depth, each layer's heads and MLP ratio) drawn again with
        probability ``prob``; the layers a greater depth adds are drawn afresh, the resolution is kept."""
        def pick(value: Any, choices: tuple[Any, ...]) -> Any:
            return rng.choice(choices) if rng.random() < prob else value

        embed, depth = pick(arch.embed_dim, self.embed_dim_list), pick(arch.depth, self.depth_list)
        heads = [pick(h, self.heads_list) for h in arch.heads]
        ratios = [pick(r, self.mlp_ratio_list) for r in arch.mlp_ratio]
        for _ in range(depth - arch.depth):
            heads.append(rng.choice(self.heads_list))
            ratios.append(rng.choice(self.mlp_ratio_list))
        return ViTArch(depth, tuple(heads[:depth]), tuple(ratios[:depth]), embed, arch.resolution)

    def crossover(self, a: ViTArch, b: ViTArch, rng: random.Random) -> ViTArch:
        """Each choice from either parent: embed width and depth, and per layer its heads and its MLP ratio from a
        parent that has the layer; ``a``'s resolution."""
        def layer_choice(field: str, i: int) -> Any:
            return getattr(rng.choice([p for p in (a, b) if i < p.depth]), field)[i]

        embed, depth = rng.choice((a.embed_dim, b.embed_dim)), rng.choice((a.depth, b.depth))
        return ViTArch(depth, tuple(layer_choice("heads", i) for i in range(depth)),
                       tuple(layer_choice("mlp_ratio", i) for i in range(depth)), embed, a.resolution)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ElasticViTSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown elastic ViT spec fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# Named specs of this family. ``vit-cifar10-cpu`` is sized for training on one CPU thread: a sandwich step (largest,
# smallest and one random sub-network, 256 images) takes 3.7-4 s on a Xeon VM, an epoch of the 45 000 CIFAR-10
# training images 11-12 min. Its largest sub-network has 76.4 M MACs and 0.97 M parameters (7 layers of embed 128,
# 4 heads of 32, MLP ratio 2), its smallest 11.9 M MACs and 0.10 M parameters (3 layers of embed 64, 2 heads, ratio 1).
NAMED_NETS: dict[str, ElasticViTSpec] = {
    "vit-cifar10-cpu": ElasticViTSpec(embed_dim_list=(64, 96, 128), depth_list=(3, 4, 5, 6, 7), heads_list=(2, 3, 4),
                                      mlp_ratio_list=(1.0, 1.5, 2.0), head_dim=32, tokenizer_channels=32),
}


def _tokenizer_widths(spec: ElasticViTSpec, embed_dim: int) -> list[tuple[int, int]]:
    """(in, out) channels of each tokenizer conv in a sub-network of width ``embed_dim``."""
    outs = [spec.tokenizer_channels] * (spec.tokenizer_layers - 1) + [embed_dim]
    return list(zip([3, *outs[:-1]], outs))


@dataclass(frozen=True)
class ViTMacs:
    """Multiply-accumulates of one image through a sub-network by kind: its tokenizer convs, its linear projections
    (q/k/v, output and MLP), its attention products (QK^T and AV) and its head (sequence pooling and classifier)."""

    tokenizer: int
    linear: int
    attention: int
    head: int

    @property
    def total(self) -> int:
        return self.tokenizer + self.linear + self.attention + self.head


def vit_mac_terms(spec: ElasticViTSpec, arch: ViTArch) -> ViTMacs:
    """:class:`ViTMacs` of ``arch`` (element-wise ops, norms and softmax not counted)."""
    e, d = arch.embed_dim, spec.head_dim
    tokenizer, side = 0, arch.resolution
    for c_in, c_out in _tokenizer_widths(spec, e):
        tokenizer += side * side * c_out * c_in * KERNEL * KERNEL
        side = pooled_side(side)
    n = side * side
    inner = [h * d for h in arch.heads]
    linear = sum(n * e * 3 * i + n * i * e + 2 * n * e * hidden for i, hidden in zip(inner, arch.hidden))
    return ViTMacs(tokenizer, linear, sum(2 * n * n * i for i in inner), 2 * n * e + e * spec.num_classes)


def vit_macs(spec: ElasticViTSpec, arch: ViTArch) -> int:
    """Multiply-accumulates of one image through ``arch``: tokenizer convs, the q/k/v, output and MLP projections,
    the QK^T and AV products, sequence pooling and classifier (element-wise ops, norms and softmax not counted)."""
    return vit_mac_terms(spec, arch).total


def vit_params(spec: ElasticViTSpec, arch: ViTArch) -> int:
    """Parameters of ``arch``'s extracted sub-network (positional embedding at ``arch.resolution``)."""
    e, d = arch.embed_dim, spec.head_dim
    params = sum(c_in * c_out * KERNEL * KERNEL for c_in, c_out in _tokenizer_widths(spec, e))
    if spec.pos_embed:
        params += spec.token_grid(arch.resolution) ** 2 * e
    for h, hidden in zip(arch.heads, arch.hidden):
        inner = h * d
        params += 4 * e + (e + 1) * 3 * inner + (inner + 1) * e + (e + 1) * hidden + (hidden + 1) * e
    return params + 2 * e + (e + 1) + (e + 1) * spec.num_classes
