"""Package hygiene: package.xml parses and declares what the code imports; ruff is clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# import name -> rosdep key declared in package.xml
ROSDEP_KEYS = {
    "rclpy": "rclpy",
    "std_msgs": "std_msgs",
    "sensor_msgs": "sensor_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "builtin_interfaces": "builtin_interfaces",
    "rcl_interfaces": "rcl_interfaces",
    "ament_index_python": "ament_index_python",
    "cv_bridge": "cv_bridge",  # optional at run time: used when it imports
    "rosbags": "python3-rosbags-pip",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "matplotlib": "python3-matplotlib",
    "tqdm": "python3-tqdm",
    "rich": "python3-rich",
    "psutil": "python3-psutil",
    "torch": "python3-pytorch-pip",
    "torchvision": "python3-torchvision-pip",
    "ofa": "python3-ofa-pip",
    "onnx": "python3-onnx",
    "onnxruntime": "python3-onnxruntime-pip",
    "mcap_ros2": "python3-mcap-ros2-support-pip",
    "mcap": "python3-mcap-ros2-support-pip",
    "pynvml": "python3-pynvml",
    "launch": "launch",
    "launch_ros": "launch_ros",
}


def _imported_top_modules() -> set[str]:
    names: set[str] = set()
    for path in list((ROOT / "dynofa_ros").rglob("*.py")) + list((ROOT / "launch").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_package_xml_parses_and_declares_every_import():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    assert package.name == "dynofa_ros"
    assert package.package_format == 3
    declared = {d.name for d in package.build_depends + package.exec_depends + package.buildtool_depends}
    stdlib = set(sys.stdlib_module_names) | {"dynofa_ros"}
    third_party = _imported_top_modules() - stdlib
    unknown = sorted(m for m in third_party if m not in ROSDEP_KEYS)
    assert not unknown, f"imports with no rosdep mapping in this test: {unknown}"
    missing = sorted({ROSDEP_KEYS[m] for m in third_party} - declared)
    assert not missing, f"package.xml lacks: {missing}"


def test_ruff_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    result = subprocess.run([ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_experiments_stay_outside_the_runtime_package():
    """``experiments/`` is neither imported by ``dynofa_ros`` nor installed by setup.py or CMake."""
    assert "experiments" not in _imported_top_modules()
    setuptools = pytest.importorskip("setuptools")
    call = next(node for node in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "find_packages")
    include = next(ast.literal_eval(kw.value) for kw in call.keywords if kw.arg == "include")
    packages = setuptools.find_packages(str(ROOT), include=include)
    assert "dynofa_ros" in packages and not any(p.split(".")[0] == "experiments" for p in packages)
    assert "experiments" not in (ROOT / "CMakeLists.txt").read_text()
