"""The benchmark index (benchmarks/run_all.py): the elastic ViT entries write fragments of their own, run by default
beside their CNN entries where those are, and their sections appear in the assembled page only once their fragments
exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "run_all.py"
spec = importlib.util.spec_from_file_location("run_all", BENCH)
run_all = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_all)

VIT = ("library-vit", "switch-vit", "manager-vit")


def test_vit_entries_name_the_vit_library_and_keep_the_cnn_fragments() -> None:
    for name in VIT:
        command, fragment, _ = run_all.BENCHMARKS[name]
        cnn_fragment = run_all.BENCHMARKS[name.removesuffix("-vit")][1]
        assert command[command.index("--library") + 1] == "vit"
        assert fragment == cnn_fragment.replace(".md", "_vit.md")
        assert (name in run_all.DEFAULT) == (name.removesuffix("-vit") in run_all.DEFAULT)
    fragments = [fragment for _, fragment, _ in run_all.BENCHMARKS.values()]
    assert all(fragments.count(run_all.BENCHMARKS[name][1]) == 1 for name in VIT)


def test_assemble_includes_a_vit_section_only_when_its_fragment_exists(tmp_path) -> None:
    fragments, out = tmp_path / "bench", tmp_path / "BENCHMARKS.md"
    fragments.mkdir()
    (fragments / "switch.md").write_text("## CNN switching\n")
    run_all.assemble(fragments, out)
    assert "### CNN switching" in out.read_text() and "ViT switching" not in out.read_text()
    (fragments / "switch_vit.md").write_text("## ViT switching\n")
    text = run_all.assemble(fragments, out).read_text()
    assert text.index("### CNN switching") < text.index("### ViT switching")
