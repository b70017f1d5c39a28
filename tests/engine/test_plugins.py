"""Plug-ins in custom_nodes/ load as in ComfyUI; a broken one fails alone."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from engine.declare import node
from engine.executor import Executor
from engine.plugins import load_plugins
from engine.registry import Registry

V1_PACK = '''
class Shout:
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "text"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hi"})}}

    def run(self, text):
        from .helpers import loud
        return (loud(text),)

class Print:
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"forceInput": True})}}

    def run(self, text):
        return {"ui": {"text": [text]}}

NODE_CLASS_MAPPINGS = {"Shout": Shout, "Print": Print}
NODE_DISPLAY_NAME_MAPPINGS = {"Shout": "Shout It"}
WEB_DIRECTORY = "./js"
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "custom_nodes"
    folder.mkdir()
    yield folder
    for name in ("shouting", "broken_pack", "typed_pack", "single_file_pack", "needs_missing", "clashing"):
        sys.modules.pop(name, None)


def write_pack(folder: Path, name: str, init: str, **files: str) -> Path:
    pack = folder / name
    pack.mkdir()
    (pack / "__init__.py").write_text(textwrap.dedent(init))
    for filename, text in files.items():
        (pack / filename.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (pack / filename.replace("__", "/")).write_text(textwrap.dedent(text))
    return pack


def test_a_v1_pack_registers_its_nodes_and_runs(plugin_dir):
    write_pack(plugin_dir, "shouting", V1_PACK, **{"helpers.py": "def loud(t):\n    return t.upper() + '!'\n"})
    (plugin_dir / "shouting" / "js").mkdir()
    registry = Registry()
    report = load_plugins(registry, [plugin_dir])
    assert [p.name for p in report.loaded] == ["shouting"]
    assert report.loaded[0].nodes == ["Shout", "Print"]
    assert registry.schema("Shout").display_name == "Shout It"
    assert registry.web_directories["shouting"].endswith("shouting/js")
    outcome = Executor(registry).execute({"1": {"class_type": "Shout", "inputs": {"text": "hey"}},
                                          "2": {"class_type": "Print", "inputs": {"text": ["1", 0]}}}, prompt_id="p")
    assert outcome.outputs["2"] == {"text": ["HEY!"]}


def test_a_single_file_plugin_loads(plugin_dir):
    (plugin_dir / "single_file_pack.py").write_text(V1_PACK.replace("from .helpers import loud", "loud = str.upper"))
    registry = Registry()
    report = load_plugins(registry, [plugin_dir])
    assert report.loaded[0].nodes == ["Shout", "Print"]


def test_a_broken_plugin_is_reported_and_the_rest_still_load(plugin_dir):
    write_pack(plugin_dir, "broken_pack", "raise RuntimeError('this pack is broken')\n")
    write_pack(plugin_dir, "shouting", V1_PACK, **{"helpers.py": "def loud(t):\n    return t\n"})
    registry = Registry()
    report = load_plugins(registry, [plugin_dir])
    assert [p.name for p in report.loaded] == ["shouting"]
    (failure,) = report.failed
    assert failure.name == "broken_pack"
    assert "this pack is broken" in failure.error
    assert "Traceback" in failure.traceback
    assert "FAILED  broken_pack" in report.summary()


def test_a_missing_import_is_named_in_the_summary(plugin_dir):
    write_pack(plugin_dir, "needs_missing", "import comfy_not_here.deep\n")
    report = load_plugins(Registry(), [plugin_dir])
    assert report.failed[0].missing == "module 'comfy_not_here'"
    assert "missing module 'comfy_not_here'" in report.summary()


def test_a_name_clash_with_a_builtin_is_an_explicit_error(plugin_dir):
    @node(category="test")
    def Shout(text: str) -> str:
        return text

    registry = Registry()
    registry.add(Shout)
    write_pack(plugin_dir, "clashing", V1_PACK, **{"helpers.py": "def loud(t):\n    return t\n"})
    report = load_plugins(registry, [plugin_dir])
    assert report.clashes == ["node 'Shout' from custom_nodes/clashing clashes with the one from builtin"]
    assert registry.get("Shout") is Shout
    assert "CLASH" in report.summary()


def test_a_pack_can_declare_loom_typed_nodes(plugin_dir):
    write_pack(plugin_dir, "typed_pack", """
        from engine.declare import node

        @node(category="text")
        def Reverse(text: str) -> str:
            return text[::-1]

        LOOM_NODES = [Reverse]
    """)
    registry = Registry()
    load_plugins(registry, [plugin_dir])
    assert registry.schema("Reverse").category == "text"


def test_prestartup_scripts_run_before_any_pack_imports(plugin_dir, monkeypatch):
    marker = plugin_dir.parent / "order.txt"
    monkeypatch.setenv("LOOM_TEST_ORDER", str(marker))
    write_pack(plugin_dir, "typed_pack",
               "import os\nopen(os.environ['LOOM_TEST_ORDER'], 'a').write('import\\n')\n",
               **{"prestartup_script.py": "import os\nopen(os.environ['LOOM_TEST_ORDER'], 'a').write('prestartup\\n')\n"})
    load_plugins(Registry(), [plugin_dir])
    assert marker.read_text().split() == ["prestartup", "import"]


def test_disabled_and_hidden_entries_are_skipped(plugin_dir):
    write_pack(plugin_dir, "broken_pack.disabled", "raise RuntimeError('must not import')\n")
    (plugin_dir / ".hidden.py").write_text("raise RuntimeError('must not import')\n")
    report = load_plugins(Registry(), [plugin_dir])
    assert report.loaded == [] and report.failed == []
