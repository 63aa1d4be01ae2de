"""``dynofa data``: decode a dataset into the data cache and show what it holds."""

from __future__ import annotations

import argparse

import numpy as np

from dynofa_ros.offline.commands.options import add_source_arguments, add_supernet_arguments, load_data, requested_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa data``: the source, and ``--net`` for the size images of mixed sizes are stored at (the
    net's largest resolution, as the other sub-commands store them)."""
    add_supernet_arguments(parser, checkpoint="none")
    add_source_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """``dynofa data``: decode the dataset into the cache (once) and print what it holds."""
    data = load_data(args, requested_spec(args))
    for split in ("train", "test"):
        labels = getattr(data, f"{split}_y")
        counts = np.bincount(labels, minlength=len(data.class_names))
        print(f"{split}: {len(labels)} images {tuple(getattr(data, f'{split}_x').shape[1:])} uint8, "
              f"{counts.min()}-{counts.max()} per class")
    print(f"{len(data.class_names)} classes: {', '.join(data.class_names)}")
    return 0
