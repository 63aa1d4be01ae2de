"""Launch files without running them: they compile, and every executable, launch argument and parameter they
or the config YAMLs name exists with its type; the bring-up plans the same nodes. test_installed_launch.py runs
them for real."""

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
def test_launch_file_compiles_and_builds_the_system_description(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    compile(tree, str(path), "exec")
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "system_launch_description" in calls


def test_launch_arguments_set_declared_parameters_of_the_right_type():
    source = (ROOT / "dynofa_ros" / "nodes" / "launch_description.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    arguments = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Argument"]
    assert len(arguments) >= 7
    declared = {e.name: declared_parameters(e) for e in NODES}
    for call in arguments:
        name, targets, value_type = call.args[0].value, ast.literal_eval(call.args[1]), call.args[2].id
        for node, parameter in targets:
            assert parameter in declared[node], f"launch argument {name}: {node} has no parameter {parameter!r}"
            default = load_parameters(ROOT / "config" / "dynofa.yaml")[node][parameter]
            assert type(default).__name__ == value_type, f"{name}: {value_type} vs the file's {default!r}"


def test_typed_arguments_accept_ints_and_floats():
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.substitutions import LaunchConfiguration
    from launch_ros.parameter_descriptions import ParameterValue

    from dynofa_ros.nodes.launch_description import ARGUMENTS

    [target] = [a for a in ARGUMENTS if a.name == "target_latency"]
    for given, expected in (("1", 1.0), ("0.02", 0.02), ("0", 0.0)):
        context = LaunchContext()
        context.launch_configurations["target_latency"] = given
        value = ParameterValue(LaunchConfiguration("target_latency"), value_type=target.value_type).evaluate(context)
        assert value == expected and isinstance(value, float)


def test_every_node_executable_exists_and_runs_its_module():
    cfg = (ROOT / "setup.py").read_text(encoding="utf-8")
    for entry in NODES:
        script = ROOT / "scripts" / entry.executable
        assert script.is_file(), script
        assert f'run("{entry.module}")' in script.read_text(encoding="utf-8")
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


def test_bringup_gives_each_app_the_library_of_its_model(monkeypatch):
    from dynofa_ros.nodes import bringup

    monkeypatch.setattr(bringup, "shipped_library_path", lambda model: Path(f"/share/{model}/library.json"))
    plan = bringup.node_plan(bringup.build_parser().parse_args(["--apps", "2", "--model", "mbv3", "vit"]))
    perception = {p["app_id"]: p["library"] for e, _, p in plan if e.name == "perception"}
    assert perception == {"app1": "/share/mbv3/library.json", "app2": "/share/vit/library.json"}
    [manager] = [p for e, _, p in plan if e.name == "manager"]
    assert manager["app_ids"] == ["app1", "app2"] and manager["libraries"] == list(perception.values())
    one = bringup.node_plan(bringup.build_parser().parse_args(["--model", "vit"]))
    assert [p["library"] for e, _, p in one if e.name == "perception"] == ["/share/vit/library.json"]
    for bad in (["--apps", "3", "--model", "mbv3", "vit"], ["--model", "vit", "--library", "x.json"]):
        with pytest.raises(ValueError):
            bringup.node_plan(bringup.build_parser().parse_args(bad))


def test_every_process_gets_the_fast_dds_profile_unless_the_environment_chose_one():
    import xml.etree.ElementTree as ET

    from dynofa_ros.nodes.system import DDS_PROFILE, dds_environment, use_dds_profile

    profile = ROOT / "config" / DDS_PROFILE
    assert dds_environment({}) == {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}  # Fast DDS 3 (Kilted, these wheels)
    assert dds_environment({"ROS_DISTRO": "jazzy"}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(profile)}  # 2.x
    assert dds_environment({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"})
    for chosen in ({"FASTDDS_DEFAULT_PROFILES_FILE": "/mine.xml"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"},
                   {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}):
        assert dds_environment(chosen) == {}, chosen
    environ = {"ROS_DOMAIN_ID": "3"}
    assert use_dds_profile(environ) == {"FASTDDS_DEFAULT_PROFILES_FILE": str(profile)} and len(environ) == 2
    assert use_dds_profile(environ) == {}  # already chosen
    # the profile: every reader takes its data over UDP, into socket buffers that hold a 1280x720 rgb8 frame
    ns = {"f": "http://www.eprosima.com"}
    root = ET.parse(profile).getroot()
    participant = root.find("f:profiles/f:participant[@is_default_profile='true']", ns)
    locators = participant.findall("f:rtps/f:defaultUnicastLocatorList/f:locator/*", ns)
    assert [loc.tag.split("}")[1] for loc in locators] == ["udpv4"]
    [udp] = [t for t in root.iterfind("f:profiles/f:transport_descriptors/f:transport_descriptor", ns)
             if t.findtext("f:type", namespaces=ns) == "UDPv4"]
    assert int(udp.findtext("f:receiveBufferSize", namespaces=ns)) >= 1280 * 720 * 3
