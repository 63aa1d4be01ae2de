"""Elastic vision Transformer supernet (CCT-style) and the extraction of static sub-networks.

Every weight is shared by nesting: a sub-network (:class:`ViTArch`) uses the first ``depth`` layers, the first
``embed_dim`` channels of every embedding-wide tensor, in each layer the first ``h`` attention heads (fixed head
dimension, so the attention scale does not change) and the first MLP hidden units. The elastic modules read their
input width from the input and their output width from an ``active_out`` set by :meth:`ElasticViT.set_active_subnet`,
so the supernet's forward is the same code as the static :class:`ViT` that :meth:`ElasticViT.get_active_subnet`
builds from plain ``nn.Conv2d`` / ``nn.LayerNorm`` / ``nn.Linear`` holding copies of the sliced weights.

The tokenizer's last conv is sliced to the active embed width rather than followed by a projection: its cost then
shrinks with the width, and a projection would add a full-width conv plus a per-width matrix that nothing shares.
There is no batch norm anywhere (layer norm only): the family has no normalisation statistics to calibrate per level.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dynofa_ros.supernet.vit_arch import KERNEL, ElasticViTSpec, ViTArch


def _attention(qkv: Tensor, head_dim: int) -> Tensor:
    """Multi-head self-attention of ``B x N x 3·h·head_dim`` projections (q, k, v blocks) to ``B x N x h·head_dim``."""
    q, k, v = qkv.unflatten(-1, (3, -1, head_dim)).permute(2, 0, 3, 1, 4).unbind(0)
    weights = (q @ k.transpose(-2, -1) * head_dim**-0.5).softmax(dim=-1)
    return (weights @ v).transpose(1, 2).flatten(2)


class ConvTokenizer(nn.Module):
    """CCT tokenizer: per conv, ReLU and max-pool 3/2/1; the map becomes ``B x N x C`` tokens (row-major)."""

    def __init__(self, convs: list[nn.Conv2d]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), kernel_size=3, stride=2, padding=1)
        return x.flatten(2).transpose(1, 2)


class PositionEmbedding(nn.Module):
    """Learnable positional embedding added to ``1 x N x C`` tokens."""

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.weight


class EncoderLayer(nn.Module):
    """Pre-LN Transformer encoder layer (attention, then GELU MLP); its norms and linears may be plain or elastic."""

    def __init__(self, ln1: nn.LayerNorm, qkv: nn.Linear, proj: nn.Linear, ln2: nn.LayerNorm, fc1: nn.Linear,
                 fc2: nn.Linear, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.qkv, self.proj, self.ln2, self.fc1, self.fc2 = ln1, qkv, proj, ln2, fc1, fc2
        self.head_dim = head_dim
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.proj(_attention(self.qkv(self.ln1(x)), self.head_dim)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.ln2(x))))))


class ViT(nn.Module):
    """Tokenizer, optional positional embedding, encoder layers, final norm, sequence pooling (a softmax over the
    tokens of a learned score), classifier. As a static sub-network it takes ``resolution`` px inputs only."""

    def __init__(self, tokenizer: ConvTokenizer, pos_embed: PositionEmbedding | None, layers: list[EncoderLayer],
                 norm: nn.LayerNorm, pool: nn.Linear, classifier: nn.Linear, dropout: float) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.pos_embed = pos_embed
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(layers)
        self.norm = norm
        self.pool = pool
        self.classifier = classifier  # registered last: the network's last nn.Linear is its classifier

    def active_layers(self) -> Iterable[nn.Module]:
        return self.layers

    def forward(self, x: Tensor) -> Tensor:
        x = self.tokenizer(x)
        if self.pos_embed is not None:
            x = self.pos_embed(x)
        x = self.drop(x)
        for layer in self.active_layers():
            x = layer(x)
        x = self.norm(x)
        weights = self.pool(x).softmax(dim=1)
        return self.classifier((weights.transpose(1, 2) @ x).flatten(1))


# -- elastic building blocks -------------------------------------------------------------------------------------


def _filled(module: nn.Module, **tensors: Tensor) -> nn.Module:
    """``module`` with its parameters set to copies of ``tensors`` (by name)."""
    with torch.no_grad():
        for name, tensor in tensors.items():
            getattr(module, name).copy_(tensor)
    return module


class ElasticConv2d(nn.Conv2d):
    """Bias-free ``KERNEL`` x ``KERNEL`` conv (stride 1, same padding) run on its first input channels (the input's)
    and its first ``active_out`` filters."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, KERNEL, padding=KERNEL // 2, bias=False)
        self.active_out = out_channels

    def _weight(self, in_channels: int) -> Tensor:
        return self.weight[: self.active_out, :in_channels]

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self._weight(x.shape[1]), None, self.stride, self.padding)

    def get_active(self, in_channels: int) -> nn.Conv2d:
        w = self._weight(in_channels)
        conv = nn.Conv2d(in_channels, self.active_out, KERNEL, padding=KERNEL // 2, bias=False, device=w.device,
                         dtype=w.dtype)
        return _filled(conv, weight=w)


class ElasticLinear(nn.Linear):
    """Linear layer whose rows form ``blocks`` equal blocks (q, k, v for ``blocks=3``); it runs on its first input
    columns (the input's width) and the first ``active_out`` rows of each block."""

    def __init__(self, in_features: int, out_features: int, blocks: int = 1) -> None:
        super().__init__(in_features, out_features * blocks)
        self.blocks = blocks
        self.active_out = out_features

    def _sliced(self, in_features: int) -> tuple[Tensor, Tensor]:
        weight = self.weight.unflatten(0, (self.blocks, -1))[:, : self.active_out, :in_features].flatten(0, 1)
        bias = self.bias.unflatten(0, (self.blocks, -1))[:, : self.active_out].flatten()
        return weight, bias

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, *self._sliced(x.shape[-1]))

    def get_active(self, in_features: int) -> nn.Linear:
        weight, bias = self._sliced(in_features)
        linear = nn.Linear(in_features, weight.shape[0], device=weight.device, dtype=weight.dtype)
        return _filled(linear, weight=weight, bias=bias)


class ElasticLayerNorm(nn.LayerNorm):
    """Layer norm over the input's channels (the first ones of the supernet's), with the first weights and biases."""

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def get_active(self, channels: int) -> nn.LayerNorm:
        w = self.weight
        norm = nn.LayerNorm(channels, eps=self.eps, device=w.device, dtype=w.dtype)
        return _filled(norm, weight=w[:channels], bias=self.bias[:channels])


class ElasticPositionEmbedding(PositionEmbedding):
    """Positional embedding of the largest token grid, first channels; resized (bicubic) for a smaller grid."""

    def __init__(self, grid: int, channels: int) -> None:
        super().__init__(nn.init.trunc_normal_(torch.empty(1, grid * grid, channels), std=0.2))
        self.grid = grid

    def active_weight(self, tokens: int, channels: int) -> Tensor:
        weight = self.weight[..., :channels]
        side = math.isqrt(tokens)
        if side == self.grid:
            return weight
        grid = weight.unflatten(1, (self.grid, self.grid)).permute(0, 3, 1, 2)
        resized = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
        return resized.flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.active_weight(x.shape[1], x.shape[2])

    def get_active(self, tokens: int, channels: int) -> PositionEmbedding:
        return PositionEmbedding(self.active_weight(tokens, channels).detach().clone())


class ElasticEncoderLayer(EncoderLayer):
    """Encoder layer of the supernet: elastic embed width, heads (q/k/v row blocks) and MLP hidden units."""

    def __init__(self, embed_dim: int, heads: int, head_dim: int, hidden: int, dropout: float) -> None:
        inner = heads * head_dim
        super().__init__(ElasticLayerNorm(embed_dim), ElasticLinear(embed_dim, inner, blocks=3),
                         ElasticLinear(inner, embed_dim), ElasticLayerNorm(embed_dim), ElasticLinear(embed_dim, hidden),
                         ElasticLinear(hidden, embed_dim), head_dim, dropout)

    def set_active(self, embed_dim: int, heads: int, hidden: int) -> None:
        self.qkv.active_out = heads * self.head_dim
        self.proj.active_out = embed_dim
        self.fc1.active_out = hidden
        self.fc2.active_out = embed_dim

    def get_active(self, embed_dim: int) -> EncoderLayer:
        return EncoderLayer(self.ln1.get_active(embed_dim), self.qkv.get_active(embed_dim),
                            self.proj.get_active(self.qkv.active_out), self.ln2.get_active(embed_dim),
                            self.fc1.get_active(embed_dim), self.fc2.get_active(self.fc1.active_out), self.head_dim,
                            self.drop.p)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight)


class ElasticViT(ViT):
    """Weight-sharing ViT supernet for ``spec``: set an active sub-network, run it in place, or extract it.

    Inputs of any of the spec's resolutions run in place (the positional embedding is resized to the token grid);
    an extracted :class:`ViT` holds the embedding of its arch's resolution and computes the same logits.
    """

    def __init__(self, spec: ElasticViTSpec) -> None:
        convs: list[nn.Conv2d] = []
        channels = 3
        for _ in range(spec.tokenizer_layers - 1):
            convs.append(nn.Conv2d(channels, spec.tokenizer_channels, KERNEL, padding=KERNEL // 2, bias=False))
            channels = spec.tokenizer_channels
        e = spec.max_embed_dim
        convs.append(ElasticConv2d(channels, e))
        pos = ElasticPositionEmbedding(spec.token_grid(max(spec.resolutions)), e) if spec.pos_embed else None
        layers = [ElasticEncoderLayer(e, spec.max_heads, spec.head_dim, spec.max_hidden, spec.dropout)
                  for _ in range(spec.max_depth)]
        super().__init__(ConvTokenizer(convs), pos, layers, ElasticLayerNorm(e), ElasticLinear(e, 1),
                         ElasticLinear(e, spec.num_classes), spec.dropout)
        self.apply(_init_weights)
        self.spec = spec
        self.set_max_net()

    @property
    def active_arch(self) -> ViTArch:
        return self._arch

    def active_layers(self) -> Iterable[nn.Module]:
        return self.layers[: self._arch.depth]

    def set_active_subnet(self, arch: ViTArch) -> None:
        """Make ``arch`` (validated against the spec) the sub-network that :meth:`forward` runs."""
        arch.validate(self.spec)
        self.tokenizer.convs[-1].active_out = arch.embed_dim
        for layer, heads, hidden in zip(self.layers, arch.heads, arch.hidden):
            layer.set_active(arch.embed_dim, heads, hidden)
        self._arch = arch

    def set_max_net(self) -> None:
        self.set_active_subnet(self.spec.largest())

    def set_min_net(self) -> None:
        self.set_active_subnet(self.spec.smallest())

    def sample_active_subnet(self, rng: random.Random) -> ViTArch:
        """Activate a random sub-network of the spec and return it."""
        arch = self.spec.sample(rng)
        self.set_active_subnet(arch)
        return arch

    def get_active_subnet(self) -> ViT:
        """A static :class:`ViT` of the active sub-network with copies of its weights (same device and mode)."""
        arch, e = self._arch, self._arch.embed_dim
        *inner, last = self.tokenizer.convs
        tokenizer = ConvTokenizer([copy.deepcopy(c) for c in inner] + [last.get_active(last.in_channels)])
        tokens = self.spec.token_grid(arch.resolution) ** 2
        pos = None if self.pos_embed is None else self.pos_embed.get_active(tokens, e)
        layers = [layer.get_active(e) for layer in self.active_layers()]
        subnet = ViT(tokenizer, pos, layers, self.norm.get_active(e), self.pool.get_active(e),
                     self.classifier.get_active(e), self.drop.p)
        return subnet.train(self.training)
