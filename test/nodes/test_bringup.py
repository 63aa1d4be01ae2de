"""Smoke test of the in-process bring-up (all nodes, one executor): a short run writes a report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def image_folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("airplane", "cat"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "images" / cls / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), np.uint8))
    return tmp_path / "images"


def test_bringup_runs_and_writes_a_report(tmp_path, tiny_library, image_folder, ros_env):
    env = {**os.environ, **ros_env, "PYTHONPATH": str(ROOT)}
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "dynofa_ros.nodes.bringup", "--duration", "7", "--library", str(tiny_library),
           "--source", "folder", "--path", str(image_folder), "--runs-dir", str(runs), "--mcap", "--rate", "15",
           "--target-change-ms", "15"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "SIMULATED BOARD" in out and "report:" in out
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    app = summary["apps"]["app0"]
    assert app["frames_processed"] > 5 and app["labelled_frames"] > 0 and app["latency_s"]["n"] > 5
    assert summary["simulated"] is True and summary["board_energy_j"] > 0
    targets = [e["what"] for e in summary["events"] if e["what"].startswith("target ")]
    assert len(targets) == 2 and targets[1].startswith("target 15.00 ms, top-1 >= "), targets  # the given one
    overhead = summary["bringup_overhead"]  # derived targets: every level timed at start-up
    assert overhead and all(o["bare_ms"] > 0 and o["demo_ms"] > 0 for o in overhead), overhead
    for name in summary["plots"]:
        assert (run_dir / name).stat().st_size > 1000
    from mcap.reader import make_reader

    with open(run_dir / "run.mcap", "rb") as f:
        topics = {c.topic for c in make_reader(f).get_summary().channels.values()}
    assert {"/classification", "/performance_report", "/platform_state", "/image/label"} <= topics


def test_ctrl_c_ends_the_run_early_with_its_report(tmp_path, tiny_library, image_folder, ros_env):
    env = {**os.environ, **ros_env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "dynofa_ros.nodes.bringup", "--duration", "120", "--library", str(tiny_library),
           "--source", "folder", "--path", str(image_folder), "--runs-dir", str(runs), "--apps", "2"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # the first status line: the system runs
            if line.startswith("t="):
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "interrupted: writing the report" in out and "Traceback" not in out, out
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["apps"]) == {"app1", "app2"} and summary["duration_s"] < 60


def test_a_cnn_app_and_a_transformer_app_under_one_manager(tmp_path, tiny_library, tiny_vit_library, image_folder,
                                                           ros_env):
    share = tmp_path / "share"  # a share directory whose shipped models are the tiny CNN and ViT libraries
    (share / "models").mkdir(parents=True)
    for name in ("config", "data", "launch", "msg", "package.xml"):
        (share / name).symlink_to(ROOT / name)
    (share / "models" / "cifar10_mbv3").symlink_to(tiny_library.parent)
    (share / "models" / "cifar10_vit").symlink_to(tiny_vit_library.parent)
    env = {**os.environ, **ros_env, "PYTHONPATH": str(ROOT), "DYNOFA_SHARE_DIR": str(share)}
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "dynofa_ros.nodes.bringup", "--duration", "8", "--apps", "2", "--model", "mbv3",
           "vit", "--source", "folder", "--path", str(image_folder), "--runs-dir", str(runs), "--rate", "15",
           "--no-load"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    apps = summary["apps"]
    assert summary["libraries"] == {"app1": str(share / "models" / "cifar10_mbv3" / "library.json"),
                                    "app2": str(share / "models" / "cifar10_vit" / "library.json")}
    assert all(apps[a]["frames_processed"] > 5 and not apps[a]["unmanaged"] for a in ("app1", "app2")), apps
    assert {int(level) for level in apps["app1"]["level_share"]} <= {0, 1}  # the CNN library's two levels
    assert {int(level) for level in apps["app2"]["level_share"]} <= {0, 1, 2}  # the ViT library's three
