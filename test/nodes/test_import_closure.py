"""The runtime is free of the training stack: what each node entry point pulls in when a fresh process imports it.

No node loads anything from ``dynofa_ros.offline``; the manager, platform, camera and evaluator nodes load no
torch (the manager reads only the library's level records). One fresh interpreter per module, so modules
imported by this test session do not hide anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dynofa_ros

SOURCE_ROOT = Path(dynofa_ros.__file__).resolve().parents[1]
NODES = ("perception_node", "manager_node", "platform_node", "camera_node", "evaluator_node", "bringup")
TORCH_FREE = {"manager_node", "platform_node", "camera_node", "evaluator_node"}
TORCH_STACK = ("torch", "torchvision", "ofa")

PROBE = "import json, sys, importlib; importlib.import_module(sys.argv[1]); print(json.dumps(sorted(sys.modules)))"


def loaded_modules(module: str) -> list[str]:
    """Every module name in ``sys.modules`` after a fresh interpreter imports ``module``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-c", PROBE, module], env=env, cwd=SOURCE_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _offenders(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)]


@pytest.mark.parametrize("node", NODES)
def test_node_import_closure(node: str) -> None:
    module = f"dynofa_ros.nodes.{node}"
    modules = loaded_modules(module)
    assert module in modules
    offline = _offenders(modules, ("dynofa_ros.offline",))
    assert not offline, f"{module} imports the offline (training) package: {offline}"
    if node in TORCH_FREE:
        torch = _offenders(modules, TORCH_STACK)
        shown = ", ".join(torch[:20]) + (f" ... ({len(torch)} in all)" if len(torch) > 20 else "")
        assert not torch, (f"{module} must run without the training stack but loads {shown}; "
                           f"find the import chain with: {sys.executable} -X importtime -c 'import {module}'")
