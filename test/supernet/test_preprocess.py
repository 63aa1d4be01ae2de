"""Frames to normalised input batches: encodings, compressed bytes, crop/resize, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dynofa_ros.offline.data import to_input
from dynofa_ros.supernet.preprocess import Preprocessor, decode_compressed
from dynofa_ros.supernet.spec import CIFAR10_MEAN, CIFAR10_STD

RNG = np.random.default_rng(0)


@pytest.fixture()
def pre() -> Preprocessor:
    return Preprocessor(CIFAR10_MEAN, CIFAR10_STD)


@pytest.mark.parametrize("resolution", [32, 40, 48, 56, 64])
def test_matches_the_training_path(pre: Preprocessor, resolution: int) -> None:
    """CIFAR-sized frames give the network what training fed it (offline.data.to_input), up to the uint8
    rounding of cv2's resize (measured max gap 0.012 at 40-64 px)."""
    frames = RNG.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    want = to_input(torch.from_numpy(frames), resolution, CIFAR10_MEAN, CIFAR10_STD)
    gap = (pre(list(frames), "rgb8", resolution) - want).abs()
    assert gap.max().item() <= (1e-5 if resolution == 32 else 0.02)
    assert gap.mean().item() <= 0.005


@pytest.mark.parametrize("shape", [(48, 64), (120, 90)])
def test_non_square_frames_are_centre_cropped(pre: Preprocessor, shape) -> None:
    rgb = RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
    out = pre(rgb, "rgb8", 40)
    assert out.shape == (1, 3, 40, 40) and out.dtype == torch.float32
    torch.testing.assert_close(out, pre(rgb[top:top + side, left:left + side].copy(), "rgb8", 40), atol=0, rtol=0)
    uncropped = Preprocessor(CIFAR10_MEAN, CIFAR10_STD, crop=False)(rgb, "rgb8", 40)
    assert (uncropped - out).abs().max() > 0.1


def test_all_raw_encodings_agree(pre: Preprocessor) -> None:
    rgb = RNG.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    alpha = np.full((50, 70, 1), 9, np.uint8)
    want = pre(rgb, "rgb8", 48)
    frames = {
        "bgr8": rgb[:, :, ::-1].copy(),
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }
    for encoding, frame in frames.items():
        torch.testing.assert_close(pre(frame, encoding, 48), want, atol=1e-6, rtol=0, msg=encoding)


def test_mono_is_replicated_to_three_channels(pre: Preprocessor) -> None:
    gray = RNG.integers(0, 256, (40, 40), dtype=np.uint8)
    out = pre(gray, "mono8", 40)[0]
    raw = torch.from_numpy(gray).float() / 255
    for c in range(3):
        torch.testing.assert_close(out[c], (raw - CIFAR10_MEAN[c]) / CIFAR10_STD[c], atol=1e-5, rtol=0)
    torch.testing.assert_close(pre(gray[:, :, None], "mono8", 40)[0], out)
    small = pre(gray, "mono8", 32)[0]
    want = pre(np.repeat(gray[:, :, None], 3, axis=2), "rgb8", 32)[0]
    torch.testing.assert_close(small, want, atol=1e-5, rtol=0)


def test_compressed_png_equals_raw(pre: Preprocessor) -> None:
    rgb = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    assert ok
    torch.testing.assert_close(pre(png.tobytes(), "png", 48), pre(rgb, "rgb8", 48))
    assert decode_compressed(memoryview(png.tobytes())).shape == (32, 32, 3)


def test_jpeg_decodes_close_to_raw(pre: Preprocessor) -> None:
    rgb = np.full((32, 32, 3), (200, 100, 30), np.uint8)
    ok, jpg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    diff = (pre(jpg.tobytes(), "jpeg", 32) - pre(rgb, "rgb8", 32)).abs().max().item()
    assert diff < 5 / 255 / min(CIFAR10_STD)


def test_batch_and_out_buffer(pre: Preprocessor) -> None:
    frames = [RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    out = torch.empty(3, 3, 40, 40)
    result = pre(frames, "rgb8", 40, out=out)
    assert result.data_ptr() == out.data_ptr()
    for i, frame in enumerate(frames):
        torch.testing.assert_close(result[i], pre(frame, "rgb8", 40)[0])
    with pytest.raises(ValueError, match="out must be float32"):
        pre(frames, "rgb8", 48, out=out)


@pytest.mark.parametrize(
    ("frame", "encoding", "message"),
    [
        (np.zeros((8, 8, 3), np.uint8), "yuv422", "unsupported encoding 'yuv422'"),
        (np.zeros((0, 8, 3), np.uint8), "rgb8", "empty frame"),
        (np.zeros((8, 8, 4), np.uint8), "rgb8", r"needs shape H×W×3, got \(8, 8, 4\)"),
        (np.zeros((8, 8), np.uint8), "bgr8", r"needs shape H×W×3"),
        (np.zeros((8, 8, 3), np.float32), "rgb8", "must be uint8"),
        (b"\x00" * 64, "rgb8", "must be a numpy array"),
        (b"definitely not an image", "jpeg", "cannot decode 23 bytes"),
        (b"", "png", "empty compressed image"),
        (np.zeros((8, 8, 3), np.uint8).tolist(), "png", "must be bytes"),
    ],
)
def test_bad_input(pre: Preprocessor, frame, encoding: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pre([frame], encoding, 32)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="std positive"):
        Preprocessor((0.5, 0.5, 0.5), (1.0, 0.0, 1.0))
    pre = Preprocessor(CIFAR10_MEAN, CIFAR10_STD)
    with pytest.raises(ValueError, match="no frames"):
        pre([], "rgb8", 32)
    with pytest.raises(ValueError, match="resolution must be positive"):
        pre(np.zeros((8, 8, 3), np.uint8), "rgb8", 0)
