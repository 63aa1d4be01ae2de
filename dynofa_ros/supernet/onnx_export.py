"""Export a level's extracted subnet to ONNX once, and keep it in the user cache keyed by what it computes.

The key hashes the subnet's weights and buffers (BN statistics and classifier head baked in), its input
resolution, the torch version and :data:`EXPORT_FORMAT`: a library rebuilt, recalibrated or refitted gets new
files, an unchanged one reuses them. Beside each ``<key>.onnx`` a ``<key>.sha256`` records the file's hash; a
file that does not match it (a torn write, a corrupt disk) is exported again.

The graph comes from torch's TorchScript-based exporter (opset 17, dynamic batch): for these convolutional
subnets it exports in about a second where the ``torch.export``-based one takes 10-20 s, and the torch builds
of older JetPacks have it too.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

EXPORT_FORMAT = "onnx-torchscript-opset17-batch-dynamic-v1"  # change when the export itself changes
OPSET = 17
INPUT, OUTPUT = "input", "logits"


def onnx_cache_dir() -> Path:
    """``onnx/`` in the user cache directory (``$DYNOFA_CACHE``, else the XDG cache)."""
    from dynofa_ros.datasets.image_dataset import default_cache_dir

    return default_cache_dir() / "onnx"


def export_key(subnet: nn.Module, resolution: int) -> str:
    """Hex key of ``subnet`` (weights and buffers) at ``resolution`` under this torch and export format."""
    digest = hashlib.sha256(f"{EXPORT_FORMAT}|torch {torch.__version__}|{resolution}px".encode())
    for name, tensor in subnet.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"|{name}:{t.dtype}:{tuple(tensor.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:32]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx(subnet: nn.Module, resolution: int, path: Path) -> Path:
    """Write ``subnet`` (in eval mode; exported from a CPU copy) as an ONNX graph with input ``N x 3 x r x r``
    (N dynamic) to ``path``, atomically (a reader never sees a half-written file)."""
    on_cpu = next(subnet.parameters()).device.type == "cpu"
    model = subnet if on_cpu else copy.deepcopy(subnet).cpu()
    example = torch.zeros(2, 3, resolution, resolution)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on itself are not the user's concern
            torch.onnx.export(model, (example,), tmp, dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=OPSET)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def cached_onnx(subnet: nn.Module, resolution: int, cache_dir: Path | None = None) -> Path:
    """The ONNX file of ``subnet`` at ``resolution`` from the cache, exported first when it is missing, stale
    (another key) or does not match its recorded hash."""
    folder = cache_dir or onnx_cache_dir()
    key = export_key(subnet, resolution)
    path, record = folder / f"{key}.onnx", folder / f"{key}.sha256"
    if path.is_file() and record.is_file() and record.read_text().strip() == sha256_of(path):
        return path
    if path.exists():
        log.warning("ONNX export %s does not match its recorded hash: exporting it again", path)
    export_onnx(subnet, resolution, path)
    record.write_text(sha256_of(path) + "\n")
    return path
