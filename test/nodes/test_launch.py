"""Launch files (launch/launch_ros are not installable here): they compile, and every executable, launch
argument and parameter they or the config YAMLs name exists; the bring-up plans the same nodes."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from dynofa_ros.nodes.system import NODES, load_parameters, shared_remappings

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = sorted((ROOT / "launch").glob("*.launch.py"))


def declared_parameters(entry) -> set[str]:
    """Parameter names a node declares (read from its source: P.declare(self, "<name>", ...))."""
    source = Path(importlib.util.find_spec(entry.module).origin).read_text(encoding="utf-8")
    return set(re.findall(r'P\.declare\(\s*self,\s*"([a-z_]+)"', source))


def test_there_are_two_launch_files():
    assert {p.name for p in LAUNCH} == {"dynofa.launch.py", "multi_app.launch.py"}


@pytest.mark.parametrize("path", LAUNCH, ids=lambda p: p.name)
def test_launch_file_compiles_and_names_what_exists(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    compile(tree, str(path), "exec")
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    declared = {c.args[0].value for c in calls if c.func.id == "DeclareLaunchArgument"}
    used = {c.args[0].value for c in calls if c.func.id == "LaunchConfiguration"}
    assert used and used <= declared, f"undeclared launch arguments {used - declared}"
    all_params = set().union(*(declared_parameters(e) for e in NODES))
    node_names = {e.name for e in NODES}
    for d in (n for n in ast.walk(tree) if isinstance(n, ast.Dict)):
        for key in d.keys:
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                assert key.value in all_params | node_names, f"{path.name}: unknown parameter {key.value!r}"


def test_every_node_executable_exists_and_runs_its_module():
    cfg = (ROOT / "setup.py").read_text(encoding="utf-8")
    for entry in NODES:
        script = ROOT / "scripts" / entry.executable
        assert script.is_file(), script
        assert f"from {entry.module} import main" in script.read_text(encoding="utf-8")
        assert f"{entry.module}:main" in cfg
        assert callable(importlib.import_module(entry.module).main)


@pytest.mark.parametrize("name", ["dynofa.yaml", "multi_app.yaml"])
def test_config_parameters_are_declared_by_their_nodes(name):
    params = load_parameters(ROOT / "config" / name)
    assert set(params) == {e.name for e in NODES}
    for entry in NODES:
        unknown = set(params[entry.name]) - declared_parameters(entry)
        assert not unknown, f"{name}: {entry.name} has no parameters {sorted(unknown)}"


def test_bringup_plans_the_launch_files_nodes():
    from dynofa_ros.nodes.bringup import build_parser, node_plan

    one = node_plan(build_parser().parse_args([]))
    assert [(e.executable, ns) for e, ns, _ in one] == [(e.executable, "") for e in NODES]
    two = node_plan(build_parser().parse_args(["--apps", "2"]))
    assert sorted(ns for _, ns, _ in two) == ["", "", "app1", "app1", "app2", "app2"]
    assert {p["app_id"] for e, _, p in two if e.name == "perception"} == {"app1", "app2"}
    assert ("performance_report", "/performance_report") in shared_remappings()
