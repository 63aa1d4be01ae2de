"""Static references: torchvision MobileNetV3 small/large at fixed width multipliers (no pretrained weights).

Each is a :class:`~experiments.slimmable.BaselineConfig` with ``width_min == width_max``, so it is
built (``torchvision.models.mobilenet_v3_*(weights=None, width_mult=w)``), trained
(:func:`~experiments.slimmable.train_elastic`: plain cross-entropy, same recipe and data), saved
and measured exactly like the width-only network, at one input resolution (default 64 px, the largest
resolution of our supernet's levels).
"""

from __future__ import annotations

from collections.abc import Sequence

from experiments.slimmable import BaselineConfig

STATIC_REFS: dict[str, tuple[str, float]] = {
    "mbv3-large-1.0": ("mobilenet_v3_large", 1.0),
    "mbv3-large-0.75": ("mobilenet_v3_large", 0.75),
    "mbv3-large-0.5": ("mobilenet_v3_large", 0.5),
    "mbv3-small-1.0": ("mobilenet_v3_small", 1.0),
    "mbv3-small-0.5": ("mobilenet_v3_small", 0.5),
}
DEFAULT_RESOLUTION = 64


def static_config(name: str, resolution: int = DEFAULT_RESOLUTION, num_classes: int = 10,
                  dropout: float = 0.1) -> BaselineConfig:
    """The static network ``name`` (a key of :data:`STATIC_REFS`) at ``resolution``."""
    if name not in STATIC_REFS:
        raise ValueError(f"unknown static reference {name!r}; choose from {sorted(STATIC_REFS)}")
    layout, width = STATIC_REFS[name]
    return BaselineConfig(layout, width, width, (resolution,), num_classes, dropout)


def static_configs(names: Sequence[str] | None = None, resolution: int = DEFAULT_RESOLUTION
                   ) -> dict[str, BaselineConfig]:
    """``{name: config}`` of the given static references (default: all of them)."""
    return {name: static_config(name, resolution) for name in (names or STATIC_REFS)}
