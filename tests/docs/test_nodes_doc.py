"""docs/nodes.md is generated from the node schemas and kept current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine.declare import Combo, Float, Int, Socket, String, node
from engine.registry import Registry
from nodes.runtime import LoomEnv

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_nodes_doc.py"

IMAGE = Socket("IMAGE")


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("gen_nodes_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page(gen) -> str:
    return gen.generate()


def section(page: str, class_type: str) -> str:
    """The part of the page that documents one node."""
    start = page.index(f"\n### {class_type}\n")
    end = page.find("\n### ", start + 1)
    return page[start:] if end < 0 else page[start:end]


def row(text: str, name: str) -> list[str]:
    """The cells of the table row whose first cell is the input or output ``name``."""
    for line in text.splitlines():
        if line.startswith(f"| `{name}`"):
            return [cell.strip() for cell in line.strip("|").split(" | ")]
    raise AssertionError(f"no row for {name!r} in:\n{text}")


def test_docs_nodes_md_is_current(gen, page):
    current = (ROOT / "docs" / "nodes.md").read_text(encoding="utf-8")
    assert current == page, f"docs/nodes.md is out of date; run: {gen.COMMAND}"


def test_check_mode_fails_when_the_page_is_stale(gen, tmp_path, monkeypatch, capsys):
    stale = tmp_path / "nodes.md"
    stale.write_text("# Built-in nodes\n\nan old page\n", encoding="utf-8")
    monkeypatch.setattr(gen, "DOC_PATH", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.COMMAND in capsys.readouterr().err


def test_every_builtin_node_has_a_section(gen, page):
    for schema in gen.builtin_schemas():
        assert f"\n### {schema.class_type}\n" in page


def test_nodes_are_grouped_under_their_category(page):
    sampling = page[page.index("\n## sampling\n"):]
    sampling = sampling[: sampling.find("\n## ", 1)]
    assert "\n### KSampler\n" in sampling and "\n### KSamplerAdvanced\n" in sampling
    assert "\n### SaveImage\n" not in sampling


def test_a_known_node_lists_its_inputs_with_defaults_and_ranges(page):
    ksampler = section(page, "KSampler")
    assert "**KSampler** · category `sampling` · from `nodes.sampling`" in ksampler
    assert row(ksampler, "steps")[:4] == ["`steps`", "INT", "`20`", "1 … 10000"]
    assert row(ksampler, "cfg")[:4] == ["`cfg`", "FLOAT", "`8.0`", "0.0 … 100.0, step 0.1"]
    assert row(ksampler, "scheduler")[2] == '`"normal"`'
    assert "`karras`" in row(ksampler, "scheduler")[4]
    assert row(ksampler, "LATENT")[:2] == ["`LATENT`", "LATENT"]


def test_output_nodes_are_flagged(page):
    assert "· output node" in section(page, "SaveImage")
    assert "· output node" not in section(page, "KSampler")


def test_file_list_combos_do_not_show_the_files_of_the_machine_that_ran_it(page):
    ckpt = row(section(page, "CheckpointLoaderSimple"), "ckpt_name")
    assert ckpt[4].startswith("options: the files in `models/checkpoints/`. The name of the checkpoint")
    assert row(section(page, "LoadImage"), "image")[4].startswith("options: the images in `input/`")


# -- the renderer on nodes declared here --------------------------------------------------


@node(category="test/docs", display_name="Doc Probe", output_names=("picture", "sizes"), output_is_list=(False, True))
def DocProbe(image: IMAGE,
             mode: str = Combo(tuple(f"m{i}" for i in range(20)), default="m3"),
             width: int = Int(512, min=64, max=8192, step=8, tooltip="Pixels | wide"),
             note: str = String("line one\nline two", multiline=True),
             mask: IMAGE | None = None,
             scale: float | None = Float(1.5, min=0.0)) -> tuple[IMAGE, int]:
    """First line
    continues here.

    A second paragraph."""
    return image, [1]


@pytest.fixture
def probe(gen, tmp_path) -> str:
    registry = Registry(env=LoomEnv.at(tmp_path, device="cpu"))
    registry.add(DocProbe, origin="test")
    return section(gen.render([registry.schema("DocProbe")]), "DocProbe")


def test_optional_inputs_are_marked(probe):
    assert row(probe, "mask")[0] == "`mask` *(optional)*"
    assert row(probe, "scale")[:4] == ["`scale` *(optional)*", "FLOAT", "`1.5`", "≥ 0.0"]
    assert row(probe, "image")[0] == "`image`"


def test_long_combos_are_abbreviated_with_their_count(probe):
    notes = row(probe, "mode")[4]
    assert notes.startswith("options: `m0`, `m1`")
    assert "`m7`, … (20 options)" in notes and "`m8`" not in notes


def test_table_cells_escape_pipes_and_newlines(probe):
    width = next(line for line in probe.splitlines() if line.startswith("| `width`"))
    assert "Pixels \\| wide" in width
    assert row(probe, "note")[2] == '`"line one\\nline two"`'
    assert "multi-line" in row(probe, "note")[4]


def test_list_outputs_are_marked(probe):
    assert row(probe, "sizes")[:3] == ["`sizes`", "INT", "list"]
    assert row(probe, "picture")[2] == ""


def test_hard_wrapped_descriptions_become_paragraphs(probe):
    assert "First line continues here.\n\nA second paragraph." in probe
