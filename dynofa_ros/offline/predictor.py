"""Accuracy predictor: ridge regression on a one-hot sub-network encoding of the supernet's family.

For ofa_mbv3 the features are those of ``ofa``'s ``MobileNetArchEncoder`` (one-hot kernel size and expand ratio
of every active block, one-hot resolution; inactive blocks are all-zero, so depth is encoded too); for
elastic_vit one-hot embed width, depth and resolution and, per layer, one-hot heads and MLP ratio (all-zero for
inactive layers). The ridge penalty is chosen by k-fold cross-validation; quality is reported as held-out RMSE and
Spearman rank correlation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ofa.nas.accuracy_predictor.arch_encoder import MobileNetArchEncoder

from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.family import ELASTIC_VIT, OFA_MBV3, Arch, Spec
from dynofa_ros.supernet.spec import SupernetSpec
from dynofa_ros.supernet.vit_arch import ElasticViTSpec, ViTArch

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@lru_cache(maxsize=4)
def _encoder(spec: SupernetSpec) -> MobileNetArchEncoder:
    return MobileNetArchEncoder(image_size_list=list(spec.resolutions), ks_list=list(spec.ks_list),
                                expand_list=list(spec.expand_list), depth_list=list(spec.depth_list),
                                n_stage=spec.n_stages)


def _encode_ofa(spec: SupernetSpec, arch: SubnetArch) -> np.ndarray:
    return _encoder(spec).arch2feature({"ks": list(arch.ks), "e": list(arch.e), "d": list(arch.d),
                                        "image_size": arch.resolution})


def _one_hot(value: Any, choices: Sequence[Any]) -> np.ndarray:
    return np.array([value == c for c in choices], dtype=float)


def _encode_vit(spec: ElasticViTSpec, arch: ViTArch) -> np.ndarray:
    parts = [_one_hot(arch.embed_dim, spec.embed_dim_list), _one_hot(arch.depth, spec.depth_list)]
    for i in range(spec.max_depth):  # an inactive layer's choices are all-zero
        active = i < arch.depth
        parts += [_one_hot(arch.heads[i] if active else None, spec.heads_list),
                  _one_hot(arch.mlp_ratio[i] if active else None, spec.mlp_ratio_list)]
    return np.concatenate([*parts, _one_hot(arch.resolution, spec.resolutions)])


# one-hot features of one (validated) arch, per family
ENCODERS: dict[str, Callable[[Any, Any], np.ndarray]] = {OFA_MBV3.name: _encode_ofa, ELASTIC_VIT.name: _encode_vit}


def encode(spec: Spec, archs: Sequence[Arch]) -> np.ndarray:
    """One row of one-hot features per arch (the family's encoding, see the module docstring)."""
    for a in archs:
        a.validate(spec)
    return np.stack([ENCODERS[spec.family](spec, a) for a in archs])


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # average the ranks of ties
            r[x == v] = r[x == v].mean()
        return r

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two equally long sequences of >= 2 values, got {len(a)} and {len(b)}")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    return w, float(my - mx @ w)


@dataclass
class AccuracyPredictor:
    """Linear model top-1 = features(arch) @ weights + bias."""

    spec: Spec
    weights: np.ndarray
    bias: float
    alpha: float

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted top-1 (fraction) of each arch."""
        if not archs:
            return np.empty(0)
        return encode(self.spec, archs) @ self.weights + self.bias

    @classmethod
    def fit(cls, spec: Spec, archs: Sequence[Arch], top1: Sequence[float],
            alphas: Sequence[float] = ALPHAS, folds: int = 5, seed: int = 0) -> AccuracyPredictor:
        """Fit on all samples, the ridge penalty picked by ``folds``-fold cross-validated MSE."""
        y = np.asarray(top1, dtype=float)
        if len(archs) != len(y) or len(y) < max(folds, 2):
            raise ValueError(f"need >= {max(folds, 2)} (arch, top1) pairs of equal count, "
                             f"got {len(archs)} archs and {len(y)} accuracies")
        x = encode(spec, archs)
        parts = np.array_split(np.random.default_rng(seed).permutation(len(y)), folds)

        def cv_mse(alpha: float) -> float:
            err = 0.0
            for test in parts:
                train = np.setdiff1d(np.arange(len(y)), test)
                w, b = _ridge(x[train], y[train], alpha)
                err += float(((x[test] @ w + b - y[test]) ** 2).sum())
            return err / len(y)

        alpha = min(alphas, key=cv_mse)
        w, b = _ridge(x, y, alpha)
        return cls(spec, w, b, alpha)


@dataclass(frozen=True)
class PredictorReport:
    """Held-out quality of a predictor fitted on the other samples."""

    rmse: float
    spearman: float
    n_train: int
    n_test: int
    alpha: float

    def to_dict(self) -> dict[str, float]:
        return {"rmse": self.rmse, "spearman": self.spearman, "n_train": self.n_train, "n_test": self.n_test,
                "alpha": self.alpha}


def fit_and_report(spec: Spec, archs: Sequence[Arch], top1: Sequence[float],
                   holdout: float = 0.2, seed: int = 0) -> tuple[AccuracyPredictor, PredictorReport]:
    """Report held-out RMSE/Spearman of a fit on ``1 - holdout`` of the data; return a fit on all of it."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1), got {holdout}")
    y = np.asarray(top1, dtype=float)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = max(2, int(round(len(y) * holdout)))
    test, train = order[:n_test], order[n_test:]
    part = AccuracyPredictor.fit(spec, [archs[i] for i in train], y[train], seed=seed)
    pred = part.predict([archs[i] for i in test])
    report = PredictorReport(float(np.sqrt(np.mean((pred - y[test]) ** 2))), spearman(pred, y[test]),
                             len(train), n_test, part.alpha)
    return AccuracyPredictor.fit(spec, archs, y, seed=seed), report
