"""Supernet specification record and construction through the ``ofa`` package."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch only in build_supernet: the spec record itself loads without it
    from torch import nn

from dynofa_ros.datasets.cifar10 import CLASS_NAMES as CIFAR10_CLASSES

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

SUPPORTED_FAMILIES = ("ofa_mbv3",)


def check_labels_and_normalisation(num_classes: int, class_names: tuple[str, ...], mean: tuple[float, ...],
                                   std: tuple[float, ...]) -> None:
    """ValueError unless there is one class name per class, and three means and three positive stds."""
    if len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError("mean and std need three values, std positive")


@dataclass(frozen=True)
class SupernetSpec:
    """Everything needed to rebuild a supernet and feed it images.

    ``resolutions`` are the elastic input sizes (pixels, square). ``mean``/``std``
    are per-channel RGB normalisation applied to images scaled to [0, 1].
    """

    family: str = "ofa_mbv3"
    width_mult: float = 1.0
    ks_list: tuple[int, ...] = (3, 5, 7)
    expand_list: tuple[int, ...] = (3, 4, 6)
    depth_list: tuple[int, ...] = (2, 3, 4)
    num_classes: int = 10
    resolutions: tuple[int, ...] = (40, 48, 56, 64)
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    dropout: float = 0.1
    class_names: tuple[str, ...] = field(default=CIFAR10_CLASSES)

    def __post_init__(self) -> None:
        if self.family not in SUPPORTED_FAMILIES:
            raise ValueError(f"unsupported supernet family {self.family!r}; supported: {SUPPORTED_FAMILIES}")
        for name in ("ks_list", "expand_list", "depth_list", "resolutions"):
            values = getattr(self, name)
            if not values or any(int(v) <= 0 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
        check_labels_and_normalisation(self.num_classes, self.class_names, self.mean, self.std)

    @property
    def n_blocks(self) -> int:
        """Number of elastic blocks (5 stages x max depth)."""
        return 5 * max(self.depth_list)

    @property
    def n_stages(self) -> int:
        return 5

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown supernet spec fields: {sorted(unknown)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


def build_supernet(spec: SupernetSpec) -> nn.Module:
    """Build an untrained ``ofa`` supernet for ``spec`` (OFAMobileNetV3 for ``ofa_mbv3``)."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    return OFAMobileNetV3(
        n_classes=spec.num_classes,
        dropout_rate=spec.dropout,
        width_mult=spec.width_mult,
        ks_list=list(spec.ks_list),
        expand_ratio_list=list(spec.expand_list),
        depth_list=list(spec.depth_list),
    )


# -- the published Once-for-All ImageNet supernets -------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def numbered_classes(n: int) -> tuple[str, ...]:
    """Placeholder class names ``class_0`` ... for a spec whose dataset has not named them yet."""
    return tuple(f"class_{i}" for i in range(n))


def _published(width_mult: float) -> SupernetSpec:
    return SupernetSpec(width_mult=width_mult, num_classes=1000, resolutions=(128, 160, 192, 224),
                        mean=IMAGENET_MEAN, std=IMAGENET_STD, dropout=0.1, class_names=numbered_classes(1000))


# Names as the ``ofa`` model zoo publishes them (``ofa_net(name)``): elastic kernel 3/5/7, expand 3/4/6,
# depth 2/3/4, trained at 128-224 px on ImageNet with its mean/std. The ResNet50 family (``ofa_resnet50``) is a
# different architecture space (elastic depth, expand ratio and width per stage) that SubnetArch does not encode.
PUBLISHED_NETS: dict[str, SupernetSpec] = {
    "ofa_mbv3_d234_e346_k357_w1.0": _published(1.0),
    "ofa_mbv3_d234_e346_k357_w1.2": _published(1.2),
}
# The named specs of this family: this package's default (``cifar10``: 10 classes, 40-64 px) and the published nets.
NAMED_NETS: dict[str, SupernetSpec] = {"cifar10": SupernetSpec(), **PUBLISHED_NETS}
