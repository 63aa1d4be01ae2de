"""``dynofa export``: prepare a library's levels for a serving backend (export once, cached) and check them
against the eager levels on real images."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dynofa_ros.offline.data import ImageRows, subset
from dynofa_ros.supernet.library import library_path
from dynofa_ros.supernet.serving import AUTO, CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``dynofa export``."""
    parser.add_argument("--library", type=Path, default=None,
                        help="library.json, or a shipped model: mbv3, vit (default: mbv3)")
    parser.add_argument("--backend", choices=CHOICES, default=AUTO,
                        help="backend to prepare (default: %(default)s, the one the perception node's auto picks)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="images to compare on: their test split (any form `dynofa data` reads; default: the "
                        "shipped CIFAR-10 test set)")
    parser.add_argument("--max-images", type=int, default=None, help="compare on a seeded random N of them")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="only export (the load-time probe check still runs)")
    parser.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")


def run(args: argparse.Namespace) -> int:
    """Load the library with the backend (exporting what the cache lacks), then compare every level."""
    from dynofa_ros.datasets.cifar10 import shipped_test_set
    from dynofa_ros.datasets.image_dataset import load_split
    from dynofa_ros.offline.export import compare_with_eager
    from dynofa_ros.supernet.runtime import DynamicNetwork
    from dynofa_ros.supernet.serving import backends_line

    path = library_path(args.library or "")
    net = DynamicNetwork.from_library(path, device=args.device, backend=args.backend)
    print(f"{path}: {len(net.levels)} levels served by {backends_line(net.level_backends)}")
    if not args.check:
        return 0
    data = args.data or shipped_test_set()
    images = load_split(data, "test", fallback_size=max(net.spec.resolutions))
    pick = subset(np.arange(len(images.y)), args.max_images)
    results = compare_with_eager(net, ImageRows(images.x, pick))
    print(f"against the eager levels on {len(pick)} test images of {data}:")
    for r in results:
        print(f"{r.level}: {r.backend:<12} top-1 agreement {r.top1_agree * 100:6.2f} %  max logit difference "
              f"{r.max_abs_diff:.2e}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"library": str(path), "data": str(data), "images": len(pick),
                                        "levels": [asdict(r) for r in results]}, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0
