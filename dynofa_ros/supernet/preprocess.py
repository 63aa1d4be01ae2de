"""Camera frames (raw uint8 or JPEG/PNG bytes) to a normalised NCHW float batch at a level's resolution."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

# encoding -> (channel count, OpenCV conversion of the resized image to RGB; None: R, G, B (+ alpha) or gray already)
RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, None),
    "rgba8": (4, None),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}
COMPRESSED_ENCODINGS = ("jpeg", "png")

Frame = np.ndarray | bytes | bytearray | memoryview


def normalisation(mean: Sequence[float], std: Sequence[float]) -> tuple[Tensor, Tensor]:
    """Per-channel float32 ``(scale, bias)`` with ``(x / 255 - mean) / std == x * scale + bias`` for uint8 ``x``
    (shared by this preprocessor and the training input path)."""
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError("mean and std need three values each, std positive")
    std_t = torch.tensor(std, dtype=torch.float32)
    return 1.0 / (255.0 * std_t), -torch.tensor(mean, dtype=torch.float32) / std_t


def decode_compressed(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """Decode JPEG/PNG bytes to an H×W×3 uint8 BGR array; ValueError if they do not decode."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        raise ValueError("empty compressed image")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {buf.size} bytes as JPEG/PNG")
    return image


def _check_raw(frame: np.ndarray, encoding: str) -> np.ndarray:
    spec = RAW_ENCODINGS.get(encoding)
    if spec is None:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: "
                         f"{sorted(RAW_ENCODINGS) + list(COMPRESSED_ENCODINGS)}")
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a {encoding} frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"a {encoding} frame must be uint8, got {frame.dtype}")
    if frame.ndim == 2 and spec[0] == 1:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] != spec[0]:
        raise ValueError(f"a {encoding} frame needs shape H×W×{spec[0]}, got {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"empty frame of shape {frame.shape}")
    return frame


def _center_square(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return frame[top:top + side, left:left + side]


def frame_list(frames: Frame | Sequence[Frame]) -> Sequence[Frame]:
    """One frame (an array, or compressed bytes) as a list of one; a sequence as it is."""
    return [frames] if isinstance(frames, (np.ndarray, bytes, bytearray, memoryview)) else frames


class Preprocessor:
    """Resize (centre square crop, INTER_AREA down / INTER_LINEAR up) and normalise with ``mean``/``std``.

    Per frame: one cv2.resize into a reused buffer, a BGR->RGB swap on the small resized image where the
    encoding needs one, and one fused multiply-add (``torch.addcmul``) from the uint8 pixels into the output
    (gray is broadcast to three channels, alpha is skipped by a view).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], crop: bool = True) -> None:
        scale, bias = normalisation(mean, std)
        self._scale, self._bias = scale, bias
        self.crop = crop
        self._buffers: dict[tuple[int, int], np.ndarray] = {}

    def _resized(self, frame: np.ndarray, resolution: int) -> np.ndarray:
        if self.crop:
            frame = _center_square(frame)
        channels = frame.shape[2]
        if frame.shape[0] == resolution and frame.shape[1] == resolution:
            return frame
        buf = self._buffers.get((resolution, channels))
        if buf is None:
            buf = self._buffers[(resolution, channels)] = np.empty((resolution, resolution, channels), np.uint8)
        interp = cv2.INTER_AREA if min(frame.shape[:2]) > resolution else cv2.INTER_LINEAR
        out = cv2.resize(frame, (resolution, resolution), dst=buf if channels > 1 else buf[:, :, 0],
                         interpolation=interp)
        return out.reshape(resolution, resolution, channels)

    def __call__(self, frames: Frame | Sequence[Frame], encoding: str, resolution: int,
                 out: Tensor | None = None) -> Tensor:
        """Batch of frames (one frame, or a list) to a float32 N×3×R×R tensor.

        ``encoding`` is one of rgb8, bgr8, mono8, rgba8, bgra8 for H×W×C uint8 arrays, or jpeg/png for
        compressed bytes. ``out`` (N×3×R×R float32, CPU) is filled instead of allocating a new tensor; without
        it every call returns a new tensor (callers may keep it).
        """
        frames = frame_list(frames)
        if len(frames) == 0:
            raise ValueError("no frames to preprocess")
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        n = len(frames)
        if out is None:
            out = torch.empty((n, 3, resolution, resolution), dtype=torch.float32)
        elif out.shape != (n, 3, resolution, resolution) or out.dtype != torch.float32:
            raise ValueError(f"out must be float32 {(n, 3, resolution, resolution)}, "
                             f"got {out.dtype} {tuple(out.shape)}")
        compressed = encoding in COMPRESSED_ENCODINGS
        for i, frame in enumerate(frames):
            if compressed:
                if not isinstance(frame, (bytes, bytearray, memoryview, np.ndarray)):
                    raise ValueError(f"a {encoding} frame must be bytes, got {type(frame).__name__}")
                image, to_rgb = decode_compressed(frame), RAW_ENCODINGS["bgr8"][1]
            else:
                image, to_rgb = _check_raw(frame, encoding), RAW_ENCODINGS[encoding][1]
            rgb = self._resized(image, resolution)
            if to_rgb is not None:
                rgb = cv2.cvtColor(rgb, to_rgb)
            # (x / 255 - mean) / std in one pass, written through an H×W×3 view of the N×3×R×R output
            torch.addcmul(self._bias, torch.from_numpy(rgb)[:, :, :3], self._scale, out=out[i].permute(1, 2, 0))
        return out
