"""Recalibrate a library's levels on the data: BN statistics, classifier heads, test top-1 (``dynofa calibrate``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn
from tqdm import tqdm

from dynofa_ros.offline.bn_tuning import BnTuneConfig
from dynofa_ros.offline.library_build import LevelFit, LevelImages, calibrate_and_test
from dynofa_ros.supernet.library import Level
from dynofa_ros.supernet.spec import SupernetSpec


def recalibrate_levels(supernet: nn.Module, spec: SupernetSpec, levels: Sequence[Level], images: LevelImages,
                       tune: BnTuneConfig | None, val: tuple[np.ndarray, np.ndarray]) -> list[LevelFit]:
    """:func:`~dynofa_ros.offline.library_build.calibrate_and_test` for each level's sub-network on ``images``, also
    scored on ``val`` (images and labels)."""
    return [calibrate_and_test(supernet, lv.arch, images.calib, images.n_calib, images.test_x, images.test_y, spec,
                               images.calib_y, tune, val)
            for lv in tqdm(levels, desc="calibrate + test levels", unit="level")]
